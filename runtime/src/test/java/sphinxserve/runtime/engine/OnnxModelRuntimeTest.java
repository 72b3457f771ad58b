package sphinxserve.runtime.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.runtime.testing.Numerics.relativeError;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.testing.ReferenceDecoder;
import sphinxserve.runtime.testing.TestBundles;

/** The ONNX Runtime engine on the {@code test} bundle, against a plain-Java reference and against itself. */
class OnnxModelRuntimeTest {

  private static final int BLOCK_SIZE = 16;
  private static final int NUM_BLOCKS = 256;

  private final Bundle bundle = TestBundles.get(BundlePreset.TEST);
  private final ModelSpec spec = bundle.spec();
  private KvCacheStorage storage;
  private OnnxModelRuntime runtime;
  private List<Integer> freeBlocks;

  @BeforeEach
  void open() {
    storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(spec, BLOCK_SIZE, NUM_BLOCKS));
    runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage);
    // Blocks handed out in a shuffled order, so block tables are scattered across the pool.
    freeBlocks = new ArrayList<>();
    for (int i = 0; i < NUM_BLOCKS; i++) freeBlocks.add(i);
    Collections.shuffle(freeBlocks, new java.util.Random(7));
  }

  @AfterEach
  void close() {
    runtime.close();
    storage.close();
  }

  @Test
  void step_matchesPlainJavaReferenceAtEveryStepOfAGreedyRun() throws Exception {
    var manifest = bundle.manifest().getDecoder();
    ReferenceDecoder reference = new ReferenceDecoder(bundle.decoderFile(), spec, manifest.getRopeTheta(),
        (float) manifest.getRmsNormEps(), manifest.getIntermediateSize());
    ImageEmbeddings image = randomImage(40, 3);
    Sequence seq = new Sequence(prompt(60, 11, 4, image.numTokens()), image, 4);

    float[] logits = new float[spec.vocabSize()];
    for (int step = 0; step < 20; step++) {
      StepOutput out = runtime.step(List.of(seq.nextChunk(Integer.MAX_VALUE)));
      out.copyRow(0, logits);
      float[] expected = reference.lastLogits(seq.tokens(), image.data(), 4, image.numTokens());
      assertTrue(relativeError(logits, expected) < 1e-4, "step " + step + ": relative error " + relativeError(logits, expected));
      seq.append(argmax(logits));
    }
  }

  @Test
  void step_raggedBatchWithScatteredBlocksGivesEachSequencesSoloTokens() {
    int numSequences = 8;
    int newTokens = 12;
    List<int[]> solo = new ArrayList<>();
    for (int s = 0; s < numSequences; s++) {
      Sequence seq = sequenceNumber(s);
      solo.add(greedy(List.of(seq), newTokens, Integer.MAX_VALUE).get(0));
      releaseAll();
    }
    // Together: staggered starts (each joins one step after the previous) and prefill chunks of 5 tokens,
    // so most steps mix prefill chunks of different lengths with single-token decodes.
    List<Sequence> batch = new ArrayList<>();
    for (int s = 0; s < numSequences; s++) batch.add(sequenceNumber(s));
    List<int[]> together = greedyStaggered(batch, newTokens, 5);
    for (int s = 0; s < numSequences; s++) {
      assertArrayEquals(solo.get(s), together.get(s), "sequence " + s);
    }
  }

  @Test
  void step_decodesBucketedByLengthGiveEachSequenceItsSoloLogitsInBatchOrder() {
    // Prompts of 20, 20, 300 and 21 tokens prefilled in one step, then decoding together; a fifth sequence of
    // 40 tokens joins at the second step and prefills in chunks of 16, so those steps run two decode buckets
    // and a chunk run. The test bundle is too small for the default run cost to split anything: lower it.
    runtime.runCostTokens = 200;
    int[] lengths = {20, 20, 300, 21, 40};
    int[] chunks = {Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, 16};
    int newTokens = 6;
    List<List<float[]>> solo = new ArrayList<>();
    for (int s = 0; s < lengths.length; s++) {
      solo.add(greedyLogits(List.of(bucketSequence(s, lengths[s])), newTokens, new int[] {chunks[s]}, new int[1]).get(0));
      releaseAll();
    }
    List<Sequence> batch = new ArrayList<>();
    for (int s = 0; s < lengths.length; s++) batch.add(bucketSequence(s, lengths[s]));
    int[] joinAt = {0, 0, 0, 0, 1};
    runtime.timer().reset();
    List<List<float[]>> together = greedyLogits(batch, newTokens, chunks, joinAt);
    // Runs: the four prompts (1); steps 1–3, a bucket of the three short histories, one of the long one, and the
    // fifth's chunk (3 × 3); steps 4–5, the same two buckets, the fifth decoding with the short ones (2 × 2);
    // steps 6–8, the fifth alone (3). Without buckets: 12.
    assertEquals(17, runtime.timer().steps(), "decoder runs");
    for (int s = 0; s < lengths.length; s++) {
      assertEquals(solo.get(s).size(), together.get(s).size(), "sequence " + s);
      for (int t = 0; t < solo.get(s).size(); t++) {
        float error = (float) relativeError(together.get(s).get(t), solo.get(s).get(t));
        assertTrue(error < 1e-5, "sequence " + s + ", token " + t + ": relative error " + error);
        assertEquals(argmax(solo.get(s).get(t)), argmax(together.get(s).get(t)), "sequence " + s + ", token " + t);
      }
    }
  }

  @Test
  void bucketDecodes_splitsWhereThePaddingOutweighsARun() {
    // 31 histories of 9 blocks and one of 251 (31 at 128 tokens + 1 at 4,000): two runs.
    long[] sorted = new long[32];
    for (int i = 0; i < 32; i++) sorted[i] = (long) (i < 31 ? 9 : 251) << 32 | i;
    assertArrayEquals(new int[] {0, 31, 32}, OnnxModelRuntime.bucketDecodes(sorted, 32, 16, OnnxModelRuntime.RUN_COST_TOKENS));
    // Equal histories, or a little ragged: one run.
    for (int i = 0; i < 32; i++) sorted[i] = (long) (i < 30 ? 9 : 12) << 32 | i;
    assertArrayEquals(new int[] {0, 32}, OnnxModelRuntime.bucketDecodes(sorted, 32, 16, OnnxModelRuntime.RUN_COST_TOKENS));
    assertArrayEquals(new int[] {0}, OnnxModelRuntime.bucketDecodes(sorted, 0, 16, OnnxModelRuntime.RUN_COST_TOKENS));
  }

  @Test
  void step_chunkedPrefillEqualsOneShotPrefill() {
    ImageEmbeddings image = randomImage(41, 2);
    int[] prompt = prompt(90, 23, 3, image.numTokens());
    int[] oneShot = greedy(List.of(new Sequence(prompt, image, 3)), 8, Integer.MAX_VALUE).get(0);
    releaseAll();
    for (int chunk : new int[] {1, 7, 64}) {
      int[] chunked = greedy(List.of(new Sequence(prompt, image, 3)), 8, chunk).get(0);
      releaseAll();
      assertArrayEquals(oneShot, chunked, "chunks of " + chunk);
    }
  }

  @Test
  void encodeViews_oneBatchedRunEqualsViewByViewTurns() {
    int s = spec.vision().viewSize();
    int viewFloats = 3 * s * s;
    float[] pixels = new float[5 * viewFloats];
    SplittableRandom random = new SplittableRandom(3);
    for (int i = 0; i < pixels.length; i++) pixels[i] = (float) random.nextGaussian();
    float[] turns = runtime.encodeViews(pixels, 5); // shareCores (the default): one view per turn on the cores
    float[] batched;
    try (OnnxModelRuntime alone = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu().withShareCores(false), storage)) {
      batched = alone.encodeViews(pixels, 5); // one ORT run over all five views
    }
    int perView = spec.vision().tokensPerView() * spec.hiddenSize();
    assertEquals(5 * perView, batched.length);
    assertEquals(5 * perView, turns.length);
    for (int v = 0; v < 5; v++) {
      float[] single = runtime.encodeViews(Arrays.copyOfRange(pixels, v * viewFloats, (v + 1) * viewFloats), 1);
      float[] slice = Arrays.copyOfRange(batched, v * perView, (v + 1) * perView);
      assertTrue(relativeError(slice, single) < 1e-5, "view " + v + ": " + relativeError(slice, single));
      assertTrue(relativeError(slice, Arrays.copyOfRange(turns, v * perView, (v + 1) * perView)) < 1e-5, "view " + v);
    }
  }

  @Test
  void encodeViews_wrongPixelCountIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> runtime.encodeViews(new float[10], 1));
  }

  @Test
  void step_blockTableTooShortIsRefused() {
    SequenceStep step = new SequenceStep(new int[20], 0, new int[] {0}, null, 0, true);
    var e = assertThrows(IllegalArgumentException.class, () -> runtime.step(List.of(step)));
    assertTrue(e.getMessage().contains("block table"), e.getMessage());
  }

  // ---- driving sequences -------------------------------------------------------------------------

  /** Sequence s of the ragged test: prompt lengths 3..~150, every third one with an image. */
  private Sequence sequenceNumber(int s) {
    ImageEmbeddings image = s % 3 == 0 ? randomImage(100 + s, 2 + s) : null;
    int textLength = 3 + 17 * s % 40;
    int[] prompt = prompt(textLength, 200 + s, 1, image == null ? 0 : image.numTokens());
    return new Sequence(prompt, image, 1);
  }

  /** Runs all sequences in lockstep until each produced {@code newTokens}; prefill in chunks of {@code chunk}. */
  private List<int[]> greedy(List<Sequence> sequences, int newTokens, int chunk) {
    return greedyStaggered(sequences, newTokens, chunk, false);
  }

  private List<int[]> greedyStaggered(List<Sequence> sequences, int newTokens, int chunk) {
    return greedyStaggered(sequences, newTokens, chunk, true);
  }

  private List<int[]> greedyStaggered(List<Sequence> sequences, int newTokens, int chunk, boolean stagger) {
    float[] logits = new float[spec.vocabSize()];
    for (int stepNumber = 0; sequences.stream().anyMatch(s -> s.generated() < newTokens); stepNumber++) {
      List<Sequence> active = new ArrayList<>();
      List<SequenceStep> steps = new ArrayList<>();
      for (int i = 0; i < sequences.size(); i++) {
        Sequence seq = sequences.get(i);
        if (seq.generated() >= newTokens || (stagger && i > stepNumber)) continue;
        active.add(seq);
        steps.add(seq.nextChunk(chunk));
      }
      StepOutput out = runtime.step(steps);
      int row = 0;
      for (int i = 0; i < active.size(); i++) {
        if (!steps.get(i).wantLogits()) continue;
        out.copyRow(row++, logits);
        active.get(i).append(argmax(logits));
      }
    }
    return sequences.stream().map(Sequence::generatedTokens).toList();
  }

  /** Sequence s of the bucketing test: a text prompt of {@code length} tokens. */
  private Sequence bucketSequence(int s, int length) {
    return new Sequence(prompt(length - 1, 300 + s, 1, 0), null, 1);
  }

  /**
   * Like {@link #greedy}, sequence i prefilling in chunks of {@code chunks[i]} from step {@code joinAt[i]}; returns every logits row each sequence
   * got, in order.
   */
  private List<List<float[]>> greedyLogits(List<Sequence> sequences, int newTokens, int[] chunks, int[] joinAt) {
    List<List<float[]>> rows = new ArrayList<>();
    for (int i = 0; i < sequences.size(); i++) rows.add(new ArrayList<>());
    for (int stepNumber = 0; sequences.stream().anyMatch(s -> s.generated() < newTokens); stepNumber++) {
      List<Integer> active = new ArrayList<>();
      List<SequenceStep> steps = new ArrayList<>();
      for (int i = 0; i < sequences.size(); i++) {
        Sequence seq = sequences.get(i);
        if (seq.generated() >= newTokens || stepNumber < joinAt[i]) continue;
        active.add(i);
        steps.add(seq.nextChunk(chunks[i]));
      }
      StepOutput out = runtime.step(steps);
      int row = 0;
      for (int k = 0; k < active.size(); k++) {
        if (!steps.get(k).wantLogits()) continue;
        float[] logits = new float[spec.vocabSize()];
        out.copyRow(row++, logits);
        rows.get(active.get(k)).add(logits);
        sequences.get(active.get(k)).append(argmax(logits));
      }
    }
    return rows;
  }

  private void releaseAll() {
    // Each test sequence takes fresh blocks; when the shuffled list runs low, start over (old contents are
    // dead once their sequence is done).
    if (freeBlocks.size() < NUM_BLOCKS / 2) open();
  }

  /** A prompt: BOS, text ids, with an image span of {@code imageTokens} placeholders at {@code imageStart}. */
  private int[] prompt(int textTokens, long seed, int imageStart, int imageTokens) {
    SplittableRandom random = new SplittableRandom(seed);
    int[] prompt = new int[1 + textTokens + imageTokens];
    prompt[0] = spec.specialTokens().bos();
    for (int i = 1; i < prompt.length; i++) {
      boolean isImage = i >= imageStart && i < imageStart + imageTokens;
      prompt[i] = isImage ? spec.specialTokens().imagePlaceholder() : 5 + random.nextInt(spec.vocabSize() - 5);
    }
    return prompt;
  }

  private ImageEmbeddings randomImage(long seed, int scale) {
    int rows = spec.vision().tokensPerImage();
    float[] data = new float[rows * spec.hiddenSize()];
    SplittableRandom random = new SplittableRandom(seed);
    for (int i = 0; i < data.length; i++) data[i] = (float) (random.nextGaussian() * scale * 0.3);
    return new ImageEmbeddings("digest-" + seed, rows, spec.hiddenSize(), data);
  }

  static int argmax(float[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }


  /** One sequence's tokens, computed count and block table; takes blocks from the shuffled free list. */
  private final class Sequence {
    private int[] tokens;
    private final int promptLength;
    private final ImageEmbeddings image;
    private final int imageStart;
    private int computed;
    private final List<Integer> blocks = new ArrayList<>();

    Sequence(int[] prompt, ImageEmbeddings image, int imageStart) {
      this.tokens = prompt;
      this.promptLength = prompt.length;
      this.image = image;
      this.imageStart = imageStart;
    }

    SequenceStep nextChunk(int maxChunk) {
      int n = Math.min(maxChunk, tokens.length - computed);
      int end = computed + n;
      while (blocks.size() * BLOCK_SIZE < end) blocks.add(freeBlocks.removeLast());
      SequenceStep step = new SequenceStep(Arrays.copyOfRange(tokens, computed, end), computed,
          blocks.stream().mapToInt(Integer::intValue).toArray(), image, imageStart, end == tokens.length);
      computed = end;
      return step;
    }

    void append(int token) {
      tokens = Arrays.copyOf(tokens, tokens.length + 1);
      tokens[tokens.length - 1] = token;
    }

    int[] tokens() {
      return tokens.clone();
    }

    int generated() {
      return tokens.length - promptLength;
    }

    int[] generatedTokens() {
      return Arrays.copyOfRange(tokens, promptLength, tokens.length);
    }
  }
}
