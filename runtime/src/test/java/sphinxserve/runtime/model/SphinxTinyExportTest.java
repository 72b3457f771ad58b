package sphinxserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.SafeTensors;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.testing.Numerics;

/**
 * The exporter's path for real SPHINX checkpoints, run on SPHINX-tiny's PyTorch model ({@code
 * tools/sphinx_export/export_sphinx_tiny.py} wrote {@code sphinx-tiny-export/}: a Meta-layout decoder with
 * interleaved q/k rows and a {@code torch.onnx.export}ed vision graph). Built into a bundle by the Java builder,
 * it must compute what PyTorch computed: the image embeddings, the logits after the prompt and after each of eight
 * greedy tokens, to 1e-4.
 */
class SphinxTinyExportTest {

  private static final int BLOCK_SIZE = 16;
  private static final double TOLERANCE = 1e-4;

  @Test
  void exportedBundleComputesWhatPyTorchComputed(@TempDir Path tmp) throws Exception {
    Path export = resourceDir("/sphinx-tiny-export");
    SphinxExport model = SphinxExport.open(export, 0);
    BundleBuilder.build(model, WeightQuantization.NONE, "test", tmp.resolve("bundle"));
    Bundle bundle = Bundle.open(tmp.resolve("bundle"));

    SafeTensors vision = SafeTensors.parse(resource("/sphinx-tiny-export/vision_parity.safetensors"), "vision_parity.safetensors");
    SafeTensors parity = SafeTensors.parse(resource("/sphinx-tiny/parity.safetensors"), "parity.safetensors");
    int[] prompt = Arrays.stream(parity.get("prompt_ids").longs()).mapToInt(Math::toIntExact).toArray();
    long[] greedy = parity.get("greedy_ids").longs();
    float[] expectedLogits = parity.get("logits").floats();
    int vocab = bundle.spec().vocabSize();
    int numBlocks = (prompt.length + greedy.length) / BLOCK_SIZE + 2;
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      float[] embeds = runtime.encodeViews(vision.get("pixel_values").floats(), bundle.spec().vision().numViews());
      double visionError = Numerics.relativeError(embeds, vision.get("image_embeds").floats());
      assertTrue(visionError < TOLERANCE, "exported vision.onnx against PyTorch: " + visionError);

      // The decoder on PyTorch's own image rows, as the SPHINX-tiny parity fixture recorded them.
      ImageEmbeddings image = new ImageEmbeddings("parity", bundle.spec().vision().tokensPerImage(), bundle.spec().hiddenSize(),
          parity.get("image_embeds").floats());
      int[] blockTable = new int[numBlocks];
      for (int i = 0; i < numBlocks; i++) blockTable[i] = i;
      float[] row = new float[vocab];
      StepOutput out = runtime.step(List.of(new SequenceStep(prompt, 0, blockTable, image, 1, true)));
      out.copyRow(0, row);
      assertClose(Arrays.copyOfRange(expectedLogits, 0, vocab), row, "logits after the prompt");
      for (int s = 0; s < greedy.length; s++) {
        assertEquals(greedy[s], argmax(row), "greedy token " + s);
        out = runtime.step(List.of(new SequenceStep(new int[] {(int) greedy[s]}, prompt.length + s, blockTable, image, 1, true)));
        out.copyRow(0, row);
        assertClose(Arrays.copyOfRange(expectedLogits, (s + 1) * vocab, (s + 2) * vocab), row, "logits after greedy token " + s);
      }
    }
  }

  private static void assertClose(float[] expected, float[] actual, String what) {
    double error = Numerics.relativeError(actual, expected);
    assertTrue(error < TOLERANCE, what + ": relative error " + error);
  }

  private static int argmax(float[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  private static Path resourceDir(String name) throws URISyntaxException {
    return Path.of(SphinxTinyExportTest.class.getResource(name).toURI());
  }

  private static byte[] resource(String name) throws IOException {
    try (InputStream in = SphinxTinyExportTest.class.getResourceAsStream(name)) {
      if (in == null) throw new IOException(name + " missing");
      return in.readAllBytes();
    }
  }
}
