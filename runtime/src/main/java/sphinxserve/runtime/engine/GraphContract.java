package sphinxserve.runtime.engine;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.util.Map;
import sphinxserve.api.ModelSpec;
import sphinxserve.runtime.bundle.BundleException;

/**
 * Checks that loaded graphs have the inputs and outputs docs/BUNDLE.md specifies, with the sizes the
 * manifest declares. A mismatch names the file and the tensor. Symbolic dimensions (-1) match anything.
 */
final class GraphContract {

  private static final long ANY = -1;

  private GraphContract() {}

  static void checkVision(OrtSession session, ModelSpec spec, String file) {
    int s = spec.vision().viewSize();
    try {
      expect(file, "input", session.getInputInfo(), "pixel_values", OnnxJavaType.FLOAT, ANY, 3, s, s);
      expect(file, "output", session.getOutputInfo(), "image_embeds", OnnxJavaType.FLOAT, ANY, spec.vision().tokensPerView(), spec.hiddenSize());
    } catch (OrtException e) {
      throw new BundleException(file + ": cannot read the graph's inputs: " + e.getMessage(), e);
    }
  }

  static void checkDecoder(OrtSession session, ModelSpec spec, String file) {
    try {
      Map<String, NodeInfo> in = session.getInputInfo();
      Map<String, NodeInfo> out = session.getOutputInfo();
      for (String name : new String[] {"input_ids", "positions", "slot_mapping", "token_index", "logits_index"}) {
        expect(file, "input", in, name, OnnxJavaType.INT64, ANY);
      }
      expect(file, "input", in, "query_index", OnnxJavaType.INT64, ANY, ANY);
      expect(file, "input", in, "block_tables", OnnxJavaType.INT64, ANY, ANY);
      expect(file, "input", in, "image_embeds", OnnxJavaType.FLOAT, ANY, spec.hiddenSize());
      expect(file, "output", out, "logits", OnnxJavaType.FLOAT, ANY, spec.vocabSize());
      for (int layer = 0; layer < spec.numLayers(); layer++) {
        for (String kind : new String[] {"key", "value"}) {
          expect(file, "input", in, "past_" + kind + "." + layer, OnnxJavaType.FLOAT, spec.numKvHeads(), ANY, ANY, spec.headDim());
          expect(file, "output", out, "present_" + kind + "." + layer, OnnxJavaType.FLOAT, spec.numKvHeads(), ANY, ANY, spec.headDim());
        }
      }
      if (in.containsKey("past_key." + spec.numLayers())) {
        throw new BundleException(file + ": has a layer " + spec.numLayers() + " but the manifest says decoder.num_layers = " + spec.numLayers());
      }
    } catch (OrtException e) {
      throw new BundleException(file + ": cannot read the graph's inputs: " + e.getMessage(), e);
    }
  }

  private static void expect(String file, String kind, Map<String, NodeInfo> infos, String name, OnnxJavaType type, long... dims) {
    NodeInfo info = infos.get(name);
    if (info == null) {
      throw new BundleException(file + ": " + kind + " tensor '" + name + "' is missing");
    }
    if (!(info.getInfo() instanceof TensorInfo tensor) || tensor.type != type) {
      throw new BundleException(file + ": " + kind + " tensor '" + name + "' should be " + type + " but is " + info.getInfo());
    }
    long[] shape = tensor.getShape();
    boolean ok = shape.length == dims.length;
    for (int i = 0; ok && i < dims.length; i++) {
      ok = dims[i] == ANY || shape[i] == ANY || shape[i] == dims[i];
    }
    if (!ok) {
      throw new BundleException(file + ": " + kind + " tensor '" + name + "' has shape " + java.util.Arrays.toString(shape)
          + " but the manifest implies " + java.util.Arrays.toString(dims).replace("-1", "?"));
    }
  }
}
