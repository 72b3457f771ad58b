package sphinxserve.runtime.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.runtime.testing.Numerics.relativeError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.api.SequenceStep;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.model.LlamaCheckpoint;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.NodeProto;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;

/**
 * The int4 decoder's wide-batch session ({@link WideBatchDecoder}): runs of at least {@code wideRows} token rows
 * take it, single decodes do not, and its logits (int4 layers in float32 compute, the int8 head dequantized) agree
 * with the bundle's own graph on the same prompt; bundles with inline weights and with external data.
 */
class WideBatchDecoderTest {

  private static final int BLOCK_SIZE = 16;

  @Test
  void presetInt4Bundle_longRunsTakeTheWideSessionAndAgreeWithTheNarrowOne(@TempDir Path dir) throws IOException {
    BundleBuilder.build(BundlePreset.TINY, TestBundles.SEED, WeightQuantization.named("int4"), dir);
    assertAgree(Bundle.open(dir));
  }

  @Test
  void externalDataInt4Bundle_wideSessionReadsTheWeightsBesideTheGraph(@TempDir Path tmp) throws IOException {
    RandomCheckpoints checkpoint = RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE)
        .hiddenSize(128).intermediateSize(256).numHeads(4).numKvHeads(2).seed(43).build();
    Path model = checkpoint.writeHf(tmp.resolve("model"));
    BundleBuilder.build(LlamaCheckpoint.open(model, 0), WeightQuantization.named("int4"), "test", tmp.resolve("int4"));
    assertAgree(Bundle.open(tmp.resolve("int4")));
  }

  @Test
  void float32AndInt8BundlesHaveNoWideSession_andInt4NoneWhenTurnedOff(@TempDir Path dir) throws IOException {
    assertFalse(hasWide(TestBundles.get(BundlePreset.TEST), RuntimeOptions.cpu()));
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED, WeightQuantization.named("int8"), dir.resolve("int8"));
    assertFalse(hasWide(Bundle.open(dir.resolve("int8")), RuntimeOptions.cpu()));
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED, WeightQuantization.named("int4"), dir.resolve("int4"));
    assertTrue(hasWide(Bundle.open(dir.resolve("int4")), RuntimeOptions.cpu()));
    assertFalse(hasWide(Bundle.open(dir.resolve("int4")), RuntimeOptions.cpu().withWideBatchSession(false)));
  }

  @Test
  void rewrite_int4LayersGoToLevelZero_anInt8HeadBecomesAFloatMatMulUnlessTooLarge(@TempDir Path dir) throws IOException {
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED, WeightQuantization.named("int4"), dir);
    ModelProto model;
    try (var in = Files.newInputStream(dir.resolve("decoder.onnx"))) {
      model = ModelProto.parseFrom(in);
    }
    long quantized = model.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals("MatMulNBits")).count();

    ModelProto wide = WideBatchDecoder.atLevelZero(model, dir, WideBatchDecoder.MAX_DEQUANTIZED_BYTES);
    assertEquals(quantized - 1, levels(wide, 4, 0), "every int4 matrix at level 0");
    assertEquals(0, levels(wide, 8, -1), "no 8-bit kernel left");
    assertTrue(wide.getGraph().getInitializerList().stream().noneMatch(t -> t.getName().equals("lm_head")), "the int8 codes are gone");
    assertTrue(wide.getGraph().getInitializerList().stream().anyMatch(t -> t.getName().equals("lm_head.dequantized")));

    ModelProto headKept = WideBatchDecoder.atLevelZero(model, dir, 0);
    assertEquals(quantized - 1, levels(headKept, 4, 0));
    assertEquals(1, levels(headKept, 8, 4), "a head over the limit keeps its int8 kernel at level 4");
  }

  /** MatMulNBits nodes of {@code bits} at accuracy level {@code level} (-1: any). */
  private static long levels(ModelProto model, int bits, int level) {
    return model.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals("MatMulNBits"))
        .filter(n -> attribute(n, "bits") == bits && (level < 0 || attribute(n, "accuracy_level") == level)).count();
  }

  private static long attribute(NodeProto node, String name) {
    return node.getAttributeList().stream().filter(a -> a.getName().equals(name)).findFirst().orElseThrow().getI();
  }

  /** A 24-token prefill and one decode, through the bundle's graph only and with the wide session allowed. */
  private static void assertAgree(Bundle bundle) {
    int[] prompt = new int[24];
    SplittableRandom random = new SplittableRandom(5);
    prompt[0] = bundle.spec().specialTokens().bos();
    for (int i = 1; i < prompt.length; i++) prompt[i] = 8 + random.nextInt(bundle.spec().vocabSize() - 8);
    Run narrow = run(bundle, prompt, Integer.MAX_VALUE);
    Run wide = run(bundle, prompt, WideBatchDecoder.WIDE_ROWS);
    assertEquals(0, narrow.wideRuns);
    assertEquals(1, wide.wideRuns, "the prefill (24 rows) takes the wide session, the decode (1 row) does not");
    double prefillError = relativeError(wide.prefill, narrow.prefill);
    // Level 4 quantizes the activations to int8 and level 0 does not: close, but not the same numbers.
    assertTrue(prefillError > 0 && prefillError < 0.05, "prefill logits, wide against narrow: relative error " + prefillError);
    assertTrue(relativeError(wide.decode, narrow.decode) < 0.05, "decode logits after the two prefills");
    assertEquals(argmax(narrow.prefill), argmax(wide.prefill));
  }

  /**
   * The KV sizing's view of the model: an int4 bundle's wide session adds its own copy of every 4-bit matrix and the
   * head in float32 to the files' bytes (what the rewritten graph holds beyond the bundle's), the opened runtime
   * reports the same, and without that session (or for float32) the files are all.
   */
  @Test
  void modelMemory_int4CountsTheWideSessionsCopyOfTheWeights(@TempDir Path dir) throws IOException {
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED, WeightQuantization.named("int4"), dir);
    Bundle int4 = Bundle.open(dir);
    ModelProto model;
    try (var in = Files.newInputStream(dir.resolve("decoder.onnx"))) {
      model = ModelProto.parseFrom(in);
    }
    // Independently, from the rewritten graph: the level-0 matrices' initializers and the dequantized head.
    ModelProto wide = WideBatchDecoder.atLevelZero(model, dir, WideBatchDecoder.MAX_DEQUANTIZED_BYTES);
    java.util.Set<String> wideWeights = new java.util.HashSet<>();
    for (NodeProto n : wide.getGraph().getNodeList()) {
      if (n.getOpType().equals("MatMulNBits")) wideWeights.addAll(n.getInputList().subList(1, n.getInputCount()));
      if (n.getOpType().equals("MatMul") && n.getInput(1).endsWith(".dequantized")) wideWeights.add(n.getInput(1));
    }
    long expected = wide.getGraph().getInitializerList().stream().filter(t -> wideWeights.contains(t.getName()))
        .mapToLong(t -> t.getRawData().size()).sum();
    assertTrue(expected > 0);

    ModelMemory memory = OnnxModelRuntime.modelMemory(int4, RuntimeOptions.cpu());
    assertEquals(expected, memory.wideDecoderBytes());
    assertEquals(int4.bytesOnDisk() + expected, memory.totalBytes());
    assertTrue(memory.visionBytes() > 0 && memory.tokenizerBytes() > 0 && memory.decoderBytes() > 0, memory.toString());
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(int4.spec(), BLOCK_SIZE, 4));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(int4, RuntimeOptions.cpu(), kv)) {
      assertEquals(memory, runtime.modelMemory());
    }

    ModelMemory narrowOnly = OnnxModelRuntime.modelMemory(int4, RuntimeOptions.cpu().withWideBatchSession(false));
    assertEquals(0, narrowOnly.wideDecoderBytes());
    assertEquals(int4.bytesOnDisk(), narrowOnly.totalBytes());
    Bundle float32 = TestBundles.get(BundlePreset.TEST);
    assertEquals(float32.bytesOnDisk(), OnnxModelRuntime.modelMemory(float32, RuntimeOptions.cpu()).totalBytes());
  }

  private record Run(float[] prefill, float[] decode, long wideRuns) {}

  private static Run run(Bundle bundle, int[] prompt, int wideRows) {
    int numBlocks = 4;
    int[] table = {0, 1, 2, 3};
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      assertTrue(runtime.hasWideBatchSession());
      runtime.wideRows = wideRows;
      float[] prefill = new float[bundle.spec().vocabSize()];
      float[] decode = new float[bundle.spec().vocabSize()];
      runtime.step(List.of(new SequenceStep(prompt, 0, table, null, 1, true))).copyRow(0, prefill);
      runtime.step(List.of(new SequenceStep(new int[] {argmax(prefill)}, prompt.length, table, null, 1, true))).copyRow(0, decode);
      return new Run(prefill, decode, runtime.wideRuns);
    }
  }

  private static boolean hasWide(Bundle bundle, RuntimeOptions options) {
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, 4));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, options, kv)) {
      return runtime.hasWideBatchSession();
    }
  }

  private static int argmax(float[] row) {
    int best = 0;
    for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }
}
