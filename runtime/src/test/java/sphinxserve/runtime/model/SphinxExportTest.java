package sphinxserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.api.GlobalViewResize;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.graph.VisionGraph;
import sphinxserve.runtime.graph.VisionShape;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.graph.Weights;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.testing.Numerics;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;
import sphinxserve.runtime.testing.checkpoints.ReferenceLlama;

/**
 * An export folder as {@code tools/sphinx_export} writes it, made here from parts whose outputs are known: a
 * Meta-layout decoder (checked against {@link ReferenceLlama}) and a vision graph the builder can also run
 * directly. The bundle must encode views exactly as that graph and decode text as the reference; a graph that
 * breaks the contract is refused naming the file.
 */
class SphinxExportTest {

  private static final VisionShape VISION = BundlePreset.TEST.vision(); // output width 64 = the decoder's hidden size

  @Test
  void exportFolderBecomesASphinxBundleThatEncodesAndDecodesAsItsParts(@TempDir Path tmp) throws Exception {
    Path dir = RandomCheckpoints.builder().numHeads(4).numKvHeads(2).seed(3).build().writeMeta(tmp.resolve("export"));
    Weights visionWeights = new Weights(9);
    VisionGraph.initialiseWeights(VISION, visionWeights);
    writeModel(VisionGraph.build(VISION, visionWeights), dir.resolve("vision.onnx"));
    writeGeometry(dir, VISION.tokensPerView(), "torch-bicubic");

    SphinxExport export = SphinxExport.open(dir, 0);
    BundleBuilder.build(export, WeightQuantization.NONE, "test", tmp.resolve("bundle"));
    Bundle bundle = Bundle.open(tmp.resolve("bundle"));
    assertEquals("sphinx-llama", bundle.manifest().getArchitecture());
    assertEquals(GlobalViewResize.TORCH_BICUBIC, bundle.spec().vision().globalViewResize());
    assertEquals(0, bundle.spec().specialTokens().imagePlaceholder(), "<unk>, as sphinx.json names it");

    float[] pixels = new float[5 * 3 * VISION.viewSize() * VISION.viewSize()];
    SplittableRandom random = new SplittableRandom(4);
    for (int i = 0; i < pixels.length; i++) pixels[i] = (float) random.nextGaussian();
    ReferenceLlama reference = ReferenceLlama.load(dir);
    int[] prompt = {1, 40, 41, 42, 43, 44, 45};
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 4, 32));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 1, false, true), storage)) {
      float[] embeddings = runtime.encodeViews(pixels, 5);
      assertEquals(5 * VISION.tokensPerView() * 64, embeddings.length);
      float[] direct = directVision(dir.resolve("vision.onnx"), pixels);
      assertTrue(Numerics.relativeError(embeddings, direct) < 1e-6, "vision.onnx as given");

      StepOutput out = runtime.step(List.of(new SequenceStep(prompt, 0, new int[] {0, 1}, null, 0, true)));
      float[] logits = new float[bundle.spec().vocabSize()];
      out.copyRow(0, logits);
      double error = Numerics.relativeError(logits, reference.lastLogitsAsFloats(prompt));
      assertTrue(error < 1e-4, "decoder against the reference: " + error);
    }
  }

  @Test
  void visionGraphBreakingTheContractIsRefusedNamingIt(@TempDir Path tmp) throws IOException {
    Path dir = RandomCheckpoints.builder().seed(5).build().writeMeta(tmp.resolve("export"));
    Weights visionWeights = new Weights(9);
    VisionGraph.initialiseWeights(VISION, visionWeights);
    writeModel(VisionGraph.build(VISION, visionWeights), dir.resolve("vision.onnx"));
    writeGeometry(dir, VISION.tokensPerView() + 1, "torch-bicubic"); // the graph emits one row fewer per view
    var e = assertThrows(BundleException.class, () -> SphinxExport.open(dir, 0));
    assertTrue(e.getMessage().contains("vision.onnx") && e.getMessage().contains("image_embeds"), e.getMessage());

    writeGeometry(dir, VISION.tokensPerView(), "lanczos");
    var recipe = assertThrows(BundleException.class, () -> SphinxExport.open(dir, 0));
    assertTrue(recipe.getMessage().contains("sphinx.json") && recipe.getMessage().contains("global_view_resize"), recipe.getMessage());
  }

  /** The graph file run on its own by ONNX Runtime. */
  private static float[] directVision(Path graph, float[] pixels) throws Exception {
    var env = sphinxserve.runtime.engine.OrtEnvironments.get();
    int s = VISION.viewSize();
    try (var session = sphinxserve.runtime.engine.Sessions.open(env, graph, RuntimeOptions.cpu());
        var input = ai.onnxruntime.OnnxTensor.createTensor(env, java.nio.FloatBuffer.wrap(pixels), new long[] {5, 3, s, s});
        var result = session.run(java.util.Map.of("pixel_values", input))) {
      java.nio.FloatBuffer out = ((ai.onnxruntime.OnnxTensor) result.get(0)).getFloatBuffer();
      float[] values = new float[out.remaining()];
      out.get(values);
      return values;
    }
  }

  private static void writeGeometry(Path dir, int tokensPerView, String resize) throws IOException {
    Files.writeString(dir.resolve("sphinx.json"), """
        {"name": "sphinx-test", "image_size": 112, "grid": 2, "view_size": 56, "tokens_per_view": %d,
         "pad_rgb": [122, 116, 104], "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
         "global_view_resize": "%s", "image_placeholder_token": "<unk>"}
        """.formatted(tokensPerView, resize));
  }

  private static void writeModel(ModelProto model, Path file) throws IOException {
    try (OutputStream out = Files.newOutputStream(file)) {
      model.writeTo(out);
    }
  }
}
