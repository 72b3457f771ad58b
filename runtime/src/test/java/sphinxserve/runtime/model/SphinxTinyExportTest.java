package sphinxserve.runtime.model;


import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.SafeTensors;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.testing.SphinxTinyParity;

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
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 2));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      float[] embeds = runtime.encodeViews(vision.get("pixel_values").floats(), bundle.spec().vision().numViews());
      SphinxTinyParity.assertClose(vision.get("image_embeds").floats(), embeds, "exported vision.onnx against PyTorch");
    }
    // The decoder on PyTorch's own image rows, as the SPHINX-tiny parity fixture recorded them.
    SphinxTinyParity parity = SphinxTinyParity.load();
    parity.assertDecoderMatches(bundle, parity.imageEmbeds());
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
