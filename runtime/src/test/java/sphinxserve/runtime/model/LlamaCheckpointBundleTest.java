package sphinxserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundleFiles;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.testing.Numerics;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors;
import sphinxserve.runtime.testing.checkpoints.ReferenceLlama;

/**
 * Checkpoints in both layouts, built into bundles and run by ONNX Runtime, against {@link ReferenceLlama}: an
 * independent double-precision forward pass straight from the safetensors files. Two sequences decode 20 greedy
 * tokens side by side after chunked prefills; every logits row must match the reference to 1e-4.
 */
class LlamaCheckpointBundleTest {

  private static final int BLOCK_SIZE = 4;
  private static final int NUM_BLOCKS = 64;
  private static final int STEPS = 20;
  private static final double TOLERANCE = 1e-4;

  static Stream<Arguments> checkpoints() {
    RandomCheckpoints.Builder base = RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE);
    return Stream.of(
        Arguments.of("HF, BF16, two shards, GQA, untied, llama3 rope scaling",
            base.dtype(RawSafetensors.Dtype.BF16).shards(2).numHeads(4).numKvHeads(2)
                .ropeScaling(new RandomCheckpoints.Llama3(8, 1, 4, 16)).seed(11).build(), false),
        Arguments.of("HF, F16, tied embeddings, biases, linear rope scaling, MQA",
            RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE).dtype(RawSafetensors.Dtype.F16)
                .tieWordEmbeddings(true).attentionBias(true).mlpBias(true).numHeads(4).numKvHeads(1)
                .ropeScaling(new RandomCheckpoints.Linear(2)).seed(12).build(), false),
        Arguments.of("Meta layout, F32, GQA",
            RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE).numHeads(4).numKvHeads(2).seed(13).build(), true));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("checkpoints")
  void logitsMatchTheReferenceForTwentyGreedyStepsBatchedAndChunked(String name, RandomCheckpoints checkpoint, boolean meta,
      @TempDir Path tmp) throws IOException {
    Path model = meta ? checkpoint.writeMeta(tmp.resolve("model")) : checkpoint.writeHf(tmp.resolve("model"));
    ReferenceLlama reference = ReferenceLlama.load(model);
    Bundle bundle = build(model, WeightQuantization.NONE, tmp.resolve("bundle"));
    assertFalse(bundle.spec().acceptsImages(), "a text model has no vision encoder");

    List<int[]> prompts = List.of(prompt(9, 1, bundle), prompt(14, 2, bundle));
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, NUM_BLOCKS));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 1, false, true), storage)) {
      Lockstep run = new Lockstep(runtime, prompts, 4);
      int checked = 0;
      while (run.step()) {
        for (int s = 0; s < prompts.size(); s++) {
          float[] logits = run.lastLogits(s);
          if (logits == null) continue;
          float[] expected = reference.lastLogitsAsFloats(run.tokensBefore(s));
          double error = Numerics.relativeError(logits, expected);
          assertTrue(error < TOLERANCE, name + ": sequence " + s + " at " + run.tokensBefore(s).length + " tokens: relative error " + error);
          checked++;
        }
      }
      assertEquals(2 * STEPS, checked);
      for (int s = 0; s < prompts.size(); s++) {
        assertArrayEquals(reference.greedy(prompts.get(s), STEPS), run.generated(s), name + ": greedy tokens of sequence " + s);
      }
    }
  }

  @Test
  void huggingFaceAndMetaLayoutsOfOneModelGiveTheSameLogits(@TempDir Path tmp) throws IOException {
    RandomCheckpoints checkpoint = RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE)
        .numHeads(4).numKvHeads(2).seed(21).build();
    Bundle hf = build(checkpoint.writeHf(tmp.resolve("hf")), WeightQuantization.NONE, tmp.resolve("hf-bundle"));
    Bundle meta = build(checkpoint.writeMeta(tmp.resolve("meta")), WeightQuantization.NONE, tmp.resolve("meta-bundle"));
    int[] prompt = prompt(12, 3, hf);
    float[] a = singleRun(hf, prompt);
    float[] b = singleRun(meta, prompt);
    assertTrue(Numerics.relativeError(a, b) < 1e-5, "HF vs Meta: " + Numerics.relativeError(a, b));
  }

  @Test
  void bundleRecordsTheModelAndKeepsWeightsOutsideTheGraph(@TempDir Path tmp) throws IOException {
    RandomCheckpoints checkpoint = RandomCheckpoints.builder().llama3Chat().seed(31).build();
    Path model = checkpoint.writeHf(tmp.resolve("Tiny-Chat"));
    Bundle bundle = build(model, WeightQuantization.NONE, tmp.resolve("bundle"));
    var m = bundle.manifest();
    assertEquals("llama", m.getArchitecture());
    assertEquals("Tiny-Chat", m.getModelName());
    assertEquals(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE, m.getTemplate().getJinja());
    assertEquals("<s>", m.getTemplate().getVariablesMap().get("bos_token"));
    assertEquals(List.of(2, 5), bundle.spec().specialTokens().eosIds());
    assertFalse(m.hasVision());
    assertTrue(m.getFilesMap().containsKey(BundleFiles.DECODER_DATA));
    // The graph file holds no weights: they are all in decoder.onnx.data.
    long graphBytes = Files.size(bundle.directory().resolve(BundleFiles.DECODER));
    long dataBytes = Files.size(bundle.directory().resolve(BundleFiles.DECODER_DATA));
    assertTrue(dataBytes > 4 * graphBytes, "graph " + graphBytes + " bytes, data " + dataBytes);
  }

  @Test
  void bundleRecordsWhetherTheTokenizerPutsBosBeforeRawText(@TempDir Path tmp) throws IOException {
    Path model = RandomCheckpoints.builder().llama3Chat().seed(32).build().writeHf(tmp.resolve("Tiny-Chat"));
    Bundle withBos = build(model, WeightQuantization.NONE, tmp.resolve("with-bos"));
    assertTrue(withBos.manifest().getTokenizer().getAddBosToken());
    assertTrue(withBos.spec().specialTokens().addBos());
    Path config = model.resolve("tokenizer_config.json");
    var json = new com.fasterxml.jackson.databind.ObjectMapper();
    var tokenizerConfig = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(config.toFile());
    json.writeValue(config.toFile(), tokenizerConfig.put("add_bos_token", false));
    Bundle withoutBos = build(model, WeightQuantization.NONE, tmp.resolve("without-bos"));
    assertFalse(withoutBos.spec().specialTokens().addBos(), "tokenizer_config.json's add_bos_token: false");
  }

  @Test
  void int8WeightsStayCloseToFloat32(@TempDir Path tmp) throws IOException {
    RandomCheckpoints checkpoint = RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE)
        .hiddenSize(128).intermediateSize(256).numHeads(4).numKvHeads(2).seed(41).build();
    Path model = checkpoint.writeHf(tmp.resolve("model"));
    Bundle fp32 = build(model, WeightQuantization.NONE, tmp.resolve("fp32"));
    Bundle int8 = build(model, WeightQuantization.named("int8"), tmp.resolve("int8"));
    assertTrue(int8.manifest().hasQuantization());
    int[] prompt = prompt(10, 4, fp32);
    double error = Numerics.relativeError(singleRun(int8, prompt), singleRun(fp32, prompt));
    assertTrue(error > 0 && error < 0.05, "int8 against float32: relative error " + error);
  }

  // ---- helpers ---------------------------------------------------------------------------------------

  private static Bundle build(Path model, WeightQuantization quantization, Path out) throws IOException {
    BundleBuilder.build(LlamaCheckpoint.open(model, 0), quantization, "test", out);
    return Bundle.open(out);
  }

  /** BOS then {@code length − 1} random non-special ids. */
  private static int[] prompt(int length, long seed, Bundle bundle) {
    SplittableRandom random = new SplittableRandom(seed);
    int[] ids = new int[length];
    ids[0] = bundle.spec().specialTokens().bos();
    for (int i = 1; i < length; i++) ids[i] = 8 + random.nextInt(bundle.spec().vocabSize() - 8);
    return ids;
  }

  /** The last position's logits of {@code prompt} in one prefill step. */
  private static float[] singleRun(Bundle bundle, int[] prompt) {
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, NUM_BLOCKS));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 1, false, true), storage)) {
      int[] blocks = new int[(prompt.length + BLOCK_SIZE - 1) / BLOCK_SIZE];
      for (int i = 0; i < blocks.length; i++) blocks[i] = i;
      StepOutput out = runtime.step(List.of(new SequenceStep(prompt, 0, blocks, null, 0, true)));
      float[] logits = new float[bundle.spec().vocabSize()];
      out.copyRow(0, logits);
      return logits;
    }
  }

  /**
   * Sequences prefilled in chunks of {@code chunk} and decoded greedily, all in one batch per step, each with its
   * own blocks, until each has {@link #STEPS} new tokens.
   */
  private static final class Lockstep {
    private final OnnxModelRuntime runtime;
    private final List<int[]> tokens = new ArrayList<>();
    private final int[] promptLengths;
    private final int[] computed;
    private final int[][] blockTables;
    private final float[][] lastLogits;
    private final int[][] before;
    private final int chunk;

    Lockstep(OnnxModelRuntime runtime, List<int[]> prompts, int chunk) {
      this.runtime = runtime;
      this.chunk = chunk;
      int n = prompts.size();
      promptLengths = new int[n];
      computed = new int[n];
      blockTables = new int[n][];
      lastLogits = new float[n][];
      before = new int[n][];
      int blocksEach = NUM_BLOCKS / n;
      for (int s = 0; s < n; s++) {
        tokens.add(prompts.get(s).clone());
        promptLengths[s] = prompts.get(s).length;
        blockTables[s] = new int[blocksEach];
        for (int b = 0; b < blocksEach; b++) blockTables[s][b] = NUM_BLOCKS - 1 - (s * blocksEach + b); // scattered, descending
      }
    }

    /** One step over every unfinished sequence; false when all are done. */
    boolean step() {
      List<Integer> active = new ArrayList<>();
      List<SequenceStep> steps = new ArrayList<>();
      Arrays.fill(lastLogits, null);
      for (int s = 0; s < tokens.size(); s++) {
        if (generated(s).length >= STEPS) continue;
        int[] t = tokens.get(s);
        int end = Math.min(t.length, computed[s] + chunk);
        int usedBlocks = (end + BLOCK_SIZE - 1) / BLOCK_SIZE;
        steps.add(new SequenceStep(Arrays.copyOfRange(t, computed[s], end), computed[s],
            Arrays.copyOf(blockTables[s], usedBlocks), null, 0, end == t.length));
        computed[s] = end;
        active.add(s);
      }
      if (active.isEmpty()) return false;
      StepOutput out = runtime.step(steps);
      int row = 0;
      for (int k = 0; k < active.size(); k++) {
        if (!steps.get(k).wantLogits()) continue;
        int s = active.get(k);
        float[] logits = new float[runtime.spec().vocabSize()];
        out.copyRow(row++, logits);
        lastLogits[s] = logits;
        before[s] = tokens.get(s).clone();
        int[] t = Arrays.copyOf(tokens.get(s), tokens.get(s).length + 1);
        t[t.length - 1] = argmax(logits);
        tokens.set(s, t);
      }
      return true;
    }

    float[] lastLogits(int s) {
      return lastLogits[s];
    }

    int[] tokensBefore(int s) {
      return before[s];
    }

    int[] generated(int s) {
      return Arrays.copyOfRange(tokens.get(s), promptLengths[s], tokens.get(s).length);
    }

    private static int argmax(float[] values) {
      int best = 0;
      for (int i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
      return best;
    }
  }
}
