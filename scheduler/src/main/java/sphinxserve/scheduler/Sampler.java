package sphinxserve.scheduler;

import java.util.SplittableRandom;
import sphinxserve.api.SamplingParams;

/**
 * Chooses the next token of a sequence from its logits row. Not thread-safe: one instance per thread that
 * samples, reused for every row of every step; all scratch is per instance (no static mutable state), and
 * nothing in it carries from one call to the next.
 */
final class Sampler {
  /*
   * Per row, in vLLM v1's order:
   *   1. the logit bias (SamplingState.applyLogitBias, sparse), penalties (applyPenalties, sparse) and the
   *      min_tokens mask, in place on the row (vLLM v1 applies logit_bias before penalties);
   *   2. greedy (temperature < 1e-5): argmax = first index of the row's maximum (lowest id wins ties);
   *      no random number is drawn;
   *   3. otherwise w[i] = exp((x[i] - max) / T) for every token and Z = sum(w), one vectorised pass. In this
   *      space min-p is a constant threshold: p[i] >= minP * p[max] <=> w[i] >= minP. Truncations keep a
   *      prefix of the tokens in descending order and compose as min-p, top-k, then top-p over the survivors
   *      renormalised (top-p keeps the smallest prefix whose mass reaches topP times the survivors' mass):
   *        - top-k on: TopSelector (prefiltered to about 4k tokens) sorts the k best; cut at min-p; cut at
   *          top-p.
   *        - top-k off, top-p on: the survivors' mass M is Z (or the min-p masked sum). NucleusHistogram
   *          buckets every weight by its top 13 float bits (monotone in the logit), walks the buckets down
   *          to the one where the mass reaches topP * M, and resolves only that bucket's tokens (weighted
   *          quickselect): O(V), no sort or selection over the row, flat or peaked. Min-p survivors are a
   *          prefix of the sorted order, so the nucleus is computed on raw weights; then the weights
   *          outside the nucleus or below minP are set to 0 (one vectorised pass plus the boundary
   *          bucket's dropped tokens) and the row is drawn from as a whole.
   *        - only min-p: the weights below minP are set to 0 and the row is drawn from as a whole.
   *        - none: the full distribution.
   *      One u = random.nextDouble() picks the token where the running mass of the kept tokens first
   *      exceeds u times their total: in rank order for top-k (sorted); otherwise in id order over the
   *      whole (zeroed) row, skipping blocks of RowMath.BLOCK tokens by their vectorised sums. Strictly
   *      exceeds, so a zero-weight token is never drawn. Only the request's own generator and the row
   *      decide the token: the sampler's scratch carries nothing from one call to the next.
   * Log-probabilities (SampledToken) are those of the model's own distribution, log-softmax of the raw row
   * before the bias, penalties, masks and temperature (vLLM's default raw_logprobs): the row is copied aside before
   * step 1 when, and only when, the request asked for them.
   *
   * The raw row is checked first: NaN or +Infinity anywhere (a broken model or runtime) fails the row with
   * InvalidLogitsException, never a token drawn from garbage.
   */

  private final int vocabSize;
  private final RowMath math;
  private final float[] weights;
  private final TopSelector selector;
  private final NucleusHistogram nucleus;
  private final float[] blockSums;
  private final float[] raw;

  /** A sampler for rows of {@code vocabSize} logits, using the preferred row kernels. */
  Sampler(int vocabSize) {
    this(vocabSize, RowMath.preferred());
  }

  /** A sampler for rows of {@code vocabSize} logits using {@code math} for the full-row loops. */
  Sampler(int vocabSize, RowMath math) {
    this.vocabSize = vocabSize;
    this.math = math;
    this.weights = new float[vocabSize];
    this.selector = new TopSelector(vocabSize);
    this.nucleus = new NucleusHistogram(vocabSize, math);
    this.blockSums = new float[(vocabSize + RowMath.BLOCK - 1) / RowMath.BLOCK];
    this.raw = new float[vocabSize];
  }

  /** A logits row that cannot be sampled from: the model produced NaN or +Infinity. */
  static final class InvalidLogitsException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    InvalidLogitsException(String message) {
      super(message);
    }
  }

  /** Rows this sampler handles. */
  int vocabSize() {
    return vocabSize;
  }

  /**
   * Chooses the next token for {@code state}'s request. Does not {@link SamplingState#append} it: the caller
   * does, once it accepts the token.
   *
   * @param logits the row, at least {@code vocabSize} long; overwritten with the processed logits
   * @param state the request's sampling state
   */
  SampledToken sample(float[] logits, SamplingState state) {
    SamplingParams params = state.params();
    if (!math.allBelowInfinity(logits, vocabSize)) {
      throw new InvalidLogitsException("the model's logits row holds NaN or +Infinity");
    }
    if (params.logprobs() > 0) System.arraycopy(logits, 0, raw, 0, vocabSize);
    state.applyLogitBias(logits);
    state.applyPenalties(logits);
    state.applyMinTokens(logits);
    float max = math.max(logits, vocabSize);
    if (!(max > Float.NEGATIVE_INFINITY)) {
      throw new IllegalStateException("no token can be sampled: every logit is -Infinity");
    }
    int chosen;
    if (params.isGreedy()) {
      chosen = math.indexOf(logits, vocabSize, max);
    } else {
      float scale = 1f / params.temperature();
      float z = math.expShiftSum(logits, weights, vocabSize, max, scale);
      int topK = params.hasTopK() && params.topK() < vocabSize ? params.topK() : 0;
      chosen = draw(logits, z, topK, params.topP(), params.minP(), state.random());
    }
    return params.logprobs() == 0 ? SampledToken.of(chosen) : withRawLogprobs(chosen, params.logprobs());
  }

  /** {@code chosen} with its log-probability and the {@code numTop} most likely tokens' under the raw row. */
  private SampledToken withRawLogprobs(int chosen, int numTop) {
    float max = math.max(raw, vocabSize);
    float logZ = (float) Math.log(math.expShiftSum(raw, weights, vocabSize, max, 1f));
    selector.load(raw, vocabSize, numTop);
    int kept = selector.ensureSorted(numTop);
    int[] topIds = new int[kept];
    float[] topLogprobs = new float[kept];
    for (int r = 0; r < kept; r++) {
      topIds[r] = selector.id(r);
      topLogprobs[r] = raw[topIds[r]] - max - logZ;
    }
    return new SampledToken(chosen, raw[chosen] - max - logZ, topIds, topLogprobs);
  }

  /** Draws from the truncated distribution over {@code weights} (already filled; {@code z} is their sum). */
  private int draw(float[] logits, float z, int topK, float topP, float minP, SplittableRandom random) {
    double u = random.nextDouble();
    if (topK > 0) {
      selector.load(logits, vocabSize, topK);
      int kept = selector.ensureSorted(topK);
      kept = cutMinP(kept, minP);
      if (topP < 1f) kept = cutTopP(kept, topP * prefixMass(kept));
      return drawPrefix(kept, u);
    }
    if (topP < 1f) {
      double target = topP * (minP > 0f ? math.sumAtLeast(weights, vocabSize, minP) : z);
      nucleus.find(logits, weights, vocabSize, target);
      float low = Math.max(nucleus.lowWeight(), minP);
      if (low > 0f) math.zeroBelow(weights, vocabSize, low);
      for (int k = nucleus.numDropped() - 1; k >= 0; k--) weights[nucleus.droppedId(k)] = 0f;
      return drawRow(u);
    }
    if (minP > 0f) math.zeroBelow(weights, vocabSize, minP);
    return drawRow(u);
  }

  /** Length of the prefix of ranks whose weights are all at least {@code minP} (at least 1: rank 0 has w = 1). */
  private int cutMinP(int kept, float minP) {
    if (minP <= 0f) return kept;
    for (int r = 1; r < kept; r++) {
      if (weights[selector.id(r)] < minP) return r;
    }
    return kept;
  }

  /** Shortest prefix of the first {@code kept} ranks whose mass reaches {@code target}. */
  private int cutTopP(int kept, double target) {
    double mass = 0;
    for (int r = 0; r < kept; r++) {
      mass += weights[selector.id(r)];
      if (mass >= target) return r + 1;
    }
    return kept;
  }

  private double prefixMass(int kept) {
    double mass = 0;
    for (int r = 0; r < kept; r++) mass += weights[selector.id(r)];
    return mass;
  }

  /** The id at the rank where the running mass of ranks {@code [0, kept)} first exceeds {@code u} times their total. */
  private int drawPrefix(int kept, double u) {
    double target = u * prefixMass(kept);
    double mass = 0;
    int last = selector.id(0);
    for (int r = 0; r < kept; r++) {
      float w = weights[selector.id(r)];
      if (w > 0f) {
        mass += w;
        last = selector.id(r);
        if (mass > target) return last;
      }
    }
    return last; // not reached: the most likely token (w = 1) is among the kept ranks
  }

  /**
   * The id where the running mass over the whole row first exceeds {@code u} times the row's total: whole
   * blocks of {@link RowMath#BLOCK} tokens are skipped by their (vectorised) sums, then tokens are added one
   * by one. Zero weights are never chosen.
   */
  private int drawRow(double u) {
    int numBlocks = math.blockSums(weights, vocabSize, blockSums);
    double total = 0;
    for (int b = 0; b < numBlocks; b++) total += blockSums[b];
    double target = u * total;
    double mass = 0;
    int b = 0;
    while (b < numBlocks - 1 && mass + blockSums[b] <= target) mass += blockSums[b++];
    int last = -1;
    for (int id = b * RowMath.BLOCK; id < vocabSize; id++) {
      float w = weights[id];
      if (w > 0f) {
        mass += w;
        last = id;
        if (mass > target) return id;
      }
    }
    // Float rounding between the block sums and this running sum: the last positive weight.
    for (int id = b * RowMath.BLOCK - 1; last < 0 && id >= 0; id--) {
      if (weights[id] > 0f) last = id;
    }
    return last;
  }
}
