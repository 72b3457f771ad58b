package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import sphinxserve.api.SamplingParams;

class SamplerTest {

  private static final int V = 32_000;
  private static final int EOS = 2;

  private final Sampler sampler = new Sampler(V);

  @Test
  void sample_greedy_picksArgmax() {
    Random random = new Random(1);
    for (int trial = 0; trial < 20; trial++) {
      float[] row = randomRow(random, V);
      int argmax = argmax(row);
      SampledToken t = sampler.sample(row.clone(), state(SamplingParams.builder().temperature(0)));
      assertEquals(argmax, t.tokenId());
      assertTrue(Float.isNaN(t.logprob()));
      assertEquals(0, t.topTokenIds().length);
    }
  }

  @Test
  void sample_greedyTie_picksLowestId() {
    float[] row = new float[V];
    row[900] = 5f;
    row[31_000] = 5f;
    assertEquals(900, sampler.sample(row, state(SamplingParams.builder().temperature(0))).tokenId());
  }

  @Test
  void sample_topK1_equalsGreedy() {
    Random random = new Random(2);
    for (int trial = 0; trial < 20; trial++) {
      float[] row = randomRow(random, V);
      SampledToken t = sampler.sample(row.clone(), state(SamplingParams.builder().temperature(1.5f).topK(1).seed(trial)));
      assertEquals(argmax(row), t.tokenId());
    }
  }

  @Test
  void sample_topP_keepsMinimalNucleus() {
    // p = 0.5, 0.3, 0.15, 0.05 on ids 10..13; everything else has probability 0.
    float[] row = new float[V];
    Arrays.fill(row, Float.NEGATIVE_INFINITY);
    double[] p = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < p.length; i++) row[10 + i] = (float) Math.log(p[i]);
    assertEquals(Set.of(10), drawnIds(row, 0.45f, 0, 2000));
    assertEquals(Set.of(10, 11), drawnIds(row, 0.75f, 0, 2000));
    assertEquals(Set.of(10, 11, 12), drawnIds(row, 0.85f, 0, 2000));
    assertEquals(Set.of(10, 11, 12, 13), drawnIds(row, 0.99f, 0, 4000));
    assertEquals(Set.of(10, 11), drawnIds(row, 0.85f, 2, 2000)); // top-k cuts first, top-p renormalises after
  }

  @Test
  void sample_topPWithoutTopK_frequenciesMatchRenormalisedNucleus() {
    // w[i] = 1 / (i + 10): the 0.5 nucleus has over a hundred tokens.
    float[] row = harmonicRow(2000);
    double[] q = softmax(row, 1f);
    int m = nucleusSize(q, 0.5);
    assertTrue(m > 100, "nucleus " + m);
    double[] expected = renormalisedPrefix(q, m);
    assertFrequencies(expected, counts(row, SamplingParams.builder().topP(0.5f).seed(17), 200_000));
  }

  @Test
  void sample_topPOnFlatRowWithTemperature_frequenciesMatchRenormalisedNucleus() {
    // N(0, 1) logits at temperature 0.8: the 0.95 nucleus is most of the row and its boundary is crowded.
    Random random = new Random(21);
    float[] row = new float[3000];
    for (int i = 0; i < row.length; i++) row[i] = (float) random.nextGaussian();
    double[] expected = renormalisedNucleus(row, 0.8f, 0.95);
    assertFrequencies(expected, counts(row, SamplingParams.builder().temperature(0.8f).topP(0.95f).seed(19), 200_000));
  }

  @Test
  void sample_topPOnTieHeavyRow_splitsTheBoundaryTieByLowerIdFirst() {
    // Logits 0, -1, -2 (and masked tokens): the 0.8 nucleus ends inside the run of -1s.
    Random random = new Random(22);
    float[] row = new float[2000];
    for (int i = 0; i < row.length; i++) row[i] = random.nextInt(5) == 0 ? Float.NEGATIVE_INFINITY : -random.nextInt(3);
    double[] expected = renormalisedNucleus(row, 1f, 0.8);
    long kept = Arrays.stream(expected).filter(e -> e > 0).count();
    long top = IntStream.range(0, row.length).filter(i -> row[i] == 0f).count();
    assertTrue(kept > top && kept < top + IntStream.range(0, row.length).filter(i -> row[i] == -1f).count(),
        "the boundary is not inside the -1 run: kept " + kept);
    assertFrequencies(expected, counts(row, SamplingParams.builder().topP(0.8f).seed(23), 100_000));
  }

  @Test
  void sample_topKAndTemperature_frequenciesMatchRenormalisedTopK() {
    float[] row = harmonicRow(2000);
    double[] expected = renormalisedPrefix(softmax(row, 2f), 5);
    assertFrequencies(expected, counts(row, SamplingParams.builder().temperature(2f).topK(5).seed(3), 50_000));
  }

  @Test
  void sample_minP_keepsTokensAboveFractionOfMax() {
    float[] row = harmonicRow(2000);
    double[] q = softmax(row, 1f);
    // p[i] >= 0.21 * p[0]  <=>  1/(i+10) >= 0.021  <=>  i <= 37
    double[] expected = renormalisedPrefix(q, 38);
    assertFrequencies(expected, counts(row, SamplingParams.builder().minP(0.21f).seed(5), 50_000));
    // The same set through the top-k and the top-p paths.
    assertFrequencies(expected, counts(row, SamplingParams.builder().minP(0.21f).topK(100).seed(6), 50_000));
    assertFrequencies(expected, counts(row, SamplingParams.builder().minP(0.21f).topP(0.9999f).seed(7), 50_000));
  }

  @Test
  void sample_plainTemperature_frequenciesMatchSoftmax() {
    float[] row = harmonicRow(200);
    double[] expected = softmax(row, 0.5f);
    assertFrequencies(expected, counts(row, SamplingParams.builder().temperature(0.5f).seed(9), 100_000));
  }

  @Test
  void sample_penalties_changeTheChoice() {
    float[] row = new float[V];
    row[5] = 3f;
    row[6] = 2.5f;
    SamplingState s = state(SamplingParams.builder().temperature(0).presencePenalty(1f));
    assertEquals(5, sampler.sample(row.clone(), s).tokenId());
    s.append(5);
    assertEquals(6, sampler.sample(row.clone(), s).tokenId()); // 3 - 1 < 2.5
    SamplingState r = new SamplingState(SamplingParams.builder().temperature(0).repetitionPenalty(1.5f).build(), V, EOS,
        new int[] {5});
    assertEquals(6, sampler.sample(row.clone(), r).tokenId()); // 3 / 1.5 < 2.5
  }

  @Test
  void sample_sameSeed_sameTokensWhateverTheBatch() {
    SamplingParams params = SamplingParams.builder().temperature(0.9f).topP(0.95f).topK(200).seed(1234).build();
    int[] alone = generate(new Sampler(V), params, 40, false);
    int[] inBatch = generate(new Sampler(V), params, 40, true);
    assertArrayEquals(alone, inBatch);
    int[] otherSeed = generate(new Sampler(V), params.toBuilder().seed(4321).build(), 40, false);
    assertNotEquals(Arrays.toString(alone), Arrays.toString(otherSeed));
  }

  @Test
  void sample_minTokens_masksEosUntilReached() {
    float[] row = new float[V];
    row[EOS] = 10f;
    row[7] = 9f;
    row[8] = 1f;
    SamplingState s = state(SamplingParams.builder().temperature(0).minTokens(2).stopTokenIds(List.of(7)));
    assertEquals(8, sampler.sample(row.clone(), s).tokenId());
    s.append(8);
    assertEquals(8, sampler.sample(row.clone(), s).tokenId());
    s.append(8);
    assertEquals(EOS, sampler.sample(row.clone(), s).tokenId());
    assertTrue(s.isStopToken(EOS));
  }

  @Test
  void sample_logitBias_forcesAndBansTokens_beforePenalties_logprobsStayRaw() {
    Random random = new Random(5);
    float[] row = randomRow(random, V);
    int greedy = argmax(row);
    int forced = (greedy + 12_345) % V;
    // +100 forces a token, greedy or sampled; the log-probabilities are still the model's own.
    SampledToken t = sampler.sample(row.clone(), state(SamplingParams.builder().temperature(0).logprobs(1).logitBias(Map.of(forced, 100f))));
    assertEquals(forced, t.tokenId());
    assertEquals(logSoftmax(row, 1f)[forced], t.logprob(), 1e-4);
    assertEquals(greedy, t.topTokenIds()[0]);
    assertEquals(Set.of(forced), drawn(row, SamplingParams.builder().temperature(1.5f).logitBias(Map.of(forced, 100f)), 200));
    // -100 bans the greedy token: the runner-up wins.
    float[] banned = row.clone();
    banned[greedy] = Float.NEGATIVE_INFINITY;
    assertEquals(argmax(banned), sampler.sample(row.clone(), state(SamplingParams.builder().temperature(0).logitBias(Map.of(greedy, -100f)))).tokenId());
    // Applied before the penalties: a presence penalty of 2 still lowers a biased token (5 + 1 - 2 < 5.5).
    float[] flat = new float[V];
    flat[10] = 5f;
    flat[11] = 5.5f;
    SamplingState penalised = state(SamplingParams.builder().temperature(0).presencePenalty(2f).logitBias(Map.of(10, 1f)));
    assertEquals(10, sampler.sample(flat.clone(), penalised).tokenId());
    penalised.append(10);
    assertEquals(11, sampler.sample(flat.clone(), penalised).tokenId());
    // Ids past the vocabulary are the caller's to refuse; the state ignores them rather than writing out of bounds.
    assertEquals(greedy, sampler.sample(row.clone(), state(SamplingParams.builder().temperature(0).logitBias(Map.of(V + 5, 100f)))).tokenId());
  }

  private Set<Integer> drawn(float[] row, SamplingParams.Builder params, int numDraws) {
    Set<Integer> ids = new HashSet<>();
    SamplingState s = state(params.seed(3));
    for (int i = 0; i < numDraws; i++) ids.add(sampler.sample(row.clone(), s).tokenId());
    return ids;
  }

  @Test
  void logitBias_outOfRange_refusedNamingTheId() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> SamplingParams.builder().logitBias(Map.of(7, 100.5f)).build());
    assertTrue(e.getMessage().startsWith("sampling.logit_bias.7"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.builder().logitBias(Map.of(7, Float.NaN)).build());
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.builder().logitBias(Map.of(-1, 1f)).build());
  }

  @Test
  void sample_logprobs_areLogSoftmaxOfTheRawRow_beforePenaltiesAndTemperature() {
    Random random = new Random(4);
    float[] row = randomRow(random, V);
    double[] logq = logSoftmax(row, 1f);
    int[] top = topIds(row, 5);
    // A strong penalty on the most likely token and a low temperature change what is drawn, not the logprobs.
    SamplingState penalised = state(SamplingParams.builder().temperature(0.7f).topK(40).logprobs(5).seed(8)
        .presencePenalty(2f).frequencyPenalty(1f));
    penalised.append(top[0]);
    SampledToken t = sampler.sample(row.clone(), penalised);
    assertEquals(logq[t.tokenId()], t.logprob(), 1e-4);
    assertArrayEquals(top, t.topTokenIds());
    double mass = 0;
    for (int r = 0; r < 5; r++) {
      assertEquals(logq[top[r]], t.topLogprobs()[r], 1e-4);
      if (r > 0) assertTrue(t.topLogprobs()[r] <= t.topLogprobs()[r - 1]);
      mass += Math.exp(t.topLogprobs()[r]);
    }
    assertTrue(mass <= 1 + 1e-6, "mass " + mass);
  }

  @Test
  void sample_nanOrPositiveInfinityInTheRow_failsTheRow() {
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
      for (int at : new int[] {0, 17, V - 1}) { // vector body and scalar tail
        float[] row = randomRow(new Random(at), V);
        row[at] = bad;
        for (SamplingParams.Builder params : List.of(SamplingParams.builder().temperature(0), SamplingParams.builder().temperature(1f))) {
          assertThrows(Sampler.InvalidLogitsException.class, () -> sampler.sample(row.clone(), state(params)), bad + " at " + at);
        }
      }
    }
  }

  @Test
  void sample_negativeInfinity_isAMaskedTokenNotAnError() {
    float[] row = randomRow(new Random(9), V);
    int best = argmax(row);
    row[best] = Float.NEGATIVE_INFINITY;
    assertNotEquals(best, sampler.sample(row.clone(), state(SamplingParams.builder().temperature(0))).tokenId());
  }

  @Test
  void sample_neverChoosesAnIdPastTheSamplerVocabulary() {
    // The model's row is longer than the tokenizer's vocabulary; the padding ids carry the largest logits.
    int numSampleable = 100;
    float[] row = randomRow(new Random(10), V);
    for (int id = numSampleable; id < V; id++) row[id] = 50f;
    Sampler small = new Sampler(numSampleable);
    for (long seed = 0; seed < 20; seed++) {
      int id = small.sample(row.clone(), state(SamplingParams.builder().temperature(1f).seed(seed))).tokenId();
      assertTrue(id >= 0 && id < numSampleable, "sampled " + id);
    }
    assertEquals(argmax(java.util.Arrays.copyOf(row, numSampleable)),
        small.sample(row.clone(), state(SamplingParams.builder().temperature(0))).tokenId());
  }

  @Test
  void sample_greedyLogprobs_chosenIsFirstOfTop() {
    Random random = new Random(6);
    float[] row = randomRow(random, V);
    double[] logq = logSoftmax(row, 1f);
    SampledToken t = sampler.sample(row.clone(), state(SamplingParams.builder().temperature(0).logprobs(3)));
    assertEquals(argmax(row), t.tokenId());
    assertEquals(t.tokenId(), t.topTokenIds()[0]);
    assertEquals(t.logprob(), t.topLogprobs()[0]);
    assertEquals(logq[t.tokenId()], t.logprob(), 1e-4);
  }

  @Test
  void sample_scalarAndVectorKernels_chooseTheSameTokens() {
    SamplingParams params = SamplingParams.builder().temperature(0.8f).topP(0.9f).seed(77).build();
    assertArrayEquals(generate(new Sampler(V, ScalarRowMath.INSTANCE), params, 30, false),
        generate(new Sampler(V, VectorRowMath.INSTANCE), params, 30, false));
  }

  @Test
  void sample_everyTokenMasked_fails() {
    float[] row = new float[V];
    Arrays.fill(row, Float.NEGATIVE_INFINITY);
    assertThrows(IllegalStateException.class, () -> sampler.sample(row, state(SamplingParams.builder())));
  }

  // ---- helpers ----

  private static SamplingState state(SamplingParams.Builder params) {
    return new SamplingState(params.build(), V, EOS, new int[0]);
  }

  /** Generates {@code n} tokens from pseudo-random rows; optionally interleaves another unseeded request. */
  private static int[] generate(Sampler sampler, SamplingParams params, int n, boolean withNeighbour) {
    SamplingState s = new SamplingState(params, V, EOS, new int[0]);
    SamplingState neighbour = new SamplingState(SamplingParams.builder().temperature(1.2f).build(), V, EOS, new int[0]);
    int[] out = new int[n];
    for (int step = 0; step < n; step++) {
      float[] row = randomRow(new Random(step), V);
      if (withNeighbour) neighbour.append(sampler.sample(row.clone(), neighbour).tokenId());
      out[step] = sampler.sample(row.clone(), s).tokenId();
      s.append(out[step]);
      if (withNeighbour) neighbour.append(sampler.sample(row.clone(), neighbour).tokenId());
    }
    return out;
  }

  private Set<Integer> drawnIds(float[] row, float topP, int topK, int draws) {
    SamplingState s = state(SamplingParams.builder().topP(topP).topK(topK).seed(42));
    Set<Integer> ids = new HashSet<>();
    for (int i = 0; i < draws; i++) ids.add(sampler.sample(row.clone(), s).tokenId());
    return ids;
  }

  private long[] counts(float[] row, SamplingParams.Builder params, int draws) {
    Sampler small = new Sampler(row.length);
    SamplingState s = new SamplingState(params.build(), row.length, EOS, new int[0]);
    float[] scratch = new float[row.length];
    long[] counts = new long[row.length];
    for (int i = 0; i < draws; i++) {
      System.arraycopy(row, 0, scratch, 0, row.length);
      counts[small.sample(scratch, s).tokenId()]++;
    }
    return counts;
  }

  /** No draw outside the support, and Pearson's chi-square below its mean plus five standard deviations. */
  private static void assertFrequencies(double[] expected, long[] counts) {
    long n = Arrays.stream(counts).sum();
    double chi2 = 0;
    int df = -1;
    for (int i = 0; i < expected.length; i++) {
      if (expected[i] == 0) {
        assertEquals(0, counts[i], "token " + i + " is outside the kept set");
      } else {
        double e = n * expected[i];
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        df++;
      }
    }
    double bound = df + 5 * Math.sqrt(2.0 * Math.max(df, 1));
    assertTrue(chi2 < bound, "chi2 " + chi2 + " with " + df + " degrees of freedom (bound " + bound + ")");
  }

  private static float[] harmonicRow(int n) {
    float[] row = new float[n];
    for (int i = 0; i < n; i++) row[i] = (float) -Math.log(i + 10);
    return row;
  }

  private static float[] randomRow(Random random, int n) {
    float[] row = new float[n];
    for (int i = 0; i < n; i++) row[i] = (float) random.nextGaussian() * 3;
    return row;
  }

  private static double[] logSoftmax(float[] row, float temperature) {
    double max = Double.NEGATIVE_INFINITY;
    for (float x : row) max = Math.max(max, x / (double) temperature);
    double sum = 0;
    for (float x : row) sum += Math.exp(x / (double) temperature - max);
    double logZ = max + Math.log(sum);
    double[] out = new double[row.length];
    for (int i = 0; i < row.length; i++) out[i] = row[i] / (double) temperature - logZ;
    return out;
  }

  private static double[] softmax(float[] row, float temperature) {
    double[] q = logSoftmax(row, temperature);
    for (int i = 0; i < q.length; i++) q[i] = Math.exp(q[i]);
    return q;
  }

  /** Tokens kept by top-p over {@code q}, whose ids are already in descending probability order. */
  private static int nucleusSize(double[] q, double topP) {
    double mass = 0;
    for (int i = 0; i < q.length; i++) {
      mass += q[i];
      if (mass >= topP) return i + 1;
    }
    return q.length;
  }

  /** Top-p by a full sort (descending logit, lower id first): q renormalised over the nucleus, else 0. */
  private static double[] renormalisedNucleus(float[] row, float temperature, double topP) {
    double[] q = softmax(row, temperature);
    Integer[] order = IntStream.range(0, row.length).boxed()
        .sorted((a, b) -> row[a] != row[b] ? Float.compare(row[b], row[a]) : Integer.compare(a, b))
        .toArray(Integer[]::new);
    double[] out = new double[row.length];
    double mass = 0;
    for (int r = 0; r < order.length && mass < topP; r++) {
      mass += q[order[r]];
      out[order[r]] = q[order[r]];
    }
    for (int i = 0; i < out.length; i++) out[i] /= mass;
    return out;
  }

  private static double[] renormalisedPrefix(double[] q, int m) {
    double mass = 0;
    for (int i = 0; i < m; i++) mass += q[i];
    double[] out = new double[q.length];
    for (int i = 0; i < m; i++) out[i] = q[i] / mass;
    return out;
  }

  private static int argmax(float[] row) {
    int best = 0;
    for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }

  private static int[] topIds(float[] row, int n) {
    return java.util.stream.IntStream.range(0, row.length).boxed()
        .sorted((a, b) -> a.equals(b) ? 0 : row[a] != row[b] ? Float.compare(row[b], row[a]) : Integer.compare(a, b))
        .limit(n).mapToInt(Integer::intValue).toArray();
  }
}
