package sphinxserve.runtime.testing;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import sphinxserve.api.ModelSpec;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.TensorProto;

/**
 * A plain-Java forward pass of a bundle's decoder: dense math, no KV cache, every position recomputed. It
 * reads the weights back out of {@code decoder.onnx} by name and computes RoPE from the manifest's theta
 * itself, so it shares no code with the graph it checks.
 */
public final class ReferenceDecoder {

  private final ModelSpec spec;
  private final double ropeTheta;
  private final float eps;
  private final int intermediate;
  private final Map<String, float[]> w = new HashMap<>();

  public ReferenceDecoder(Path decoderOnnx, ModelSpec spec, double ropeTheta, float eps, int intermediate) throws IOException {
    this.spec = spec;
    this.ropeTheta = ropeTheta;
    this.eps = eps;
    this.intermediate = intermediate;
    ModelProto model;
    try (InputStream in = Files.newInputStream(decoderOnnx)) {
      model = ModelProto.parseFrom(in);
    }
    for (TensorProto t : model.getGraph().getInitializerList()) {
      if (t.getDataType() != TensorProto.DataType.FLOAT_VALUE || t.getDimsCount() == 0) continue;
      float[] values = new float[t.getRawData().size() / 4];
      t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
      w.put(t.getName(), values);
    }
    // The graph stores q/k/v and gate/up as one matrix each; this reference reads them apart.
    int h = spec.hiddenSize();
    int q = spec.numHeads() * spec.headDim();
    int kv = spec.numKvHeads() * spec.headDim();
    for (int l = 0; l < spec.numLayers(); l++) {
      String p = "layers." + l + ".";
      unfuse(p + "qkv_proj", h, new String[] {p + "q_proj", p + "k_proj", p + "v_proj"}, new int[] {q, kv, kv});
      unfuse(p + "gate_up_proj", h, new String[] {p + "gate_proj", p + "up_proj"}, new int[] {intermediate, intermediate});
    }
  }

  /** Splits the fused {@code [rows, Σ outs]} weight {@code fused} into column blocks named {@code names}. */
  private void unfuse(String fused, int rows, String[] names, int[] outs) {
    float[] all = w.get(fused);
    if (all == null) throw new IllegalStateException("the decoder graph has no initializer " + fused);
    int total = all.length / rows;
    int column = 0;
    for (int i = 0; i < names.length; i++) {
      float[] part = new float[rows * outs[i]];
      for (int r = 0; r < rows; r++) System.arraycopy(all, r * total + column, part, r * outs[i], outs[i]);
      w.put(names[i], part);
      column += outs[i];
    }
  }

  /**
   * Logits {@code [vocab]} of the last position of {@code tokens}. Positions in
   * {@code [imageStart, imageStart + imageRows)} take their embedding from {@code image} instead of the table.
   */
  public float[] lastLogits(int[] tokens, float[] image, int imageStart, int imageRows) {
    int n = tokens.length;
    int h = spec.hiddenSize();
    int nh = spec.numHeads();
    int kh = spec.numKvHeads();
    int d = spec.headDim();
    float[][] x = new float[n][];
    for (int i = 0; i < n; i++) {
      x[i] = new float[h];
      if (image != null && i >= imageStart && i < imageStart + imageRows) {
        System.arraycopy(image, (i - imageStart) * h, x[i], 0, h);
      } else {
        System.arraycopy(w.get("embed_tokens"), tokens[i] * h, x[i], 0, h);
      }
    }
    for (int l = 0; l < spec.numLayers(); l++) {
      String p = "layers." + l + ".";
      float[][] q = new float[n][];
      float[][] k = new float[n][];
      float[][] v = new float[n][];
      for (int i = 0; i < n; i++) {
        float[] normed = rmsNorm(x[i], w.get(p + "input_norm"));
        q[i] = rope(matVec(normed, w.get(p + "q_proj"), h, nh * d), nh, d, i);
        k[i] = rope(matVec(normed, w.get(p + "k_proj"), h, kh * d), kh, d, i);
        v[i] = matVec(normed, w.get(p + "v_proj"), h, kh * d);
      }
      for (int i = 0; i < n; i++) {
        float[] attention = new float[nh * d];
        for (int head = 0; head < nh; head++) {
          int kvHead = head / (nh / kh);
          double[] scores = new double[i + 1];
          double max = Double.NEGATIVE_INFINITY;
          for (int j = 0; j <= i; j++) {
            double dot = 0;
            for (int e = 0; e < d; e++) dot += q[i][head * d + e] * k[j][kvHead * d + e];
            scores[j] = dot / Math.sqrt(d);
            max = Math.max(max, scores[j]);
          }
          double sum = 0;
          for (int j = 0; j <= i; j++) sum += scores[j] = Math.exp(scores[j] - max);
          for (int j = 0; j <= i; j++) {
            for (int e = 0; e < d; e++) attention[head * d + e] += (float) (scores[j] / sum * v[j][kvHead * d + e]);
          }
        }
        add(x[i], matVec(attention, w.get(p + "o_proj"), nh * d, h));
      }
      for (int i = 0; i < n; i++) {
        float[] normed = rmsNorm(x[i], w.get(p + "post_attention_norm"));
        float[] gate = matVec(normed, w.get(p + "gate_proj"), h, intermediate);
        float[] up = matVec(normed, w.get(p + "up_proj"), h, intermediate);
        for (int e = 0; e < intermediate; e++) gate[e] = (float) (gate[e] / (1 + Math.exp(-gate[e])) * up[e]);
        add(x[i], matVec(gate, w.get(p + "down_proj"), intermediate, h));
      }
    }
    return matVec(rmsNorm(x[n - 1], w.get("final_norm")), w.get("lm_head"), h, spec.vocabSize());
  }

  private float[] rmsNorm(float[] x, float[] gain) {
    double sumSquares = 0;
    for (float value : x) sumSquares += value * value;
    double inv = 1.0 / Math.sqrt(sumSquares / x.length + eps);
    float[] out = new float[x.length];
    for (int i = 0; i < x.length; i++) out[i] = (float) (x[i] * inv * gain[i]);
    return out;
  }

  /** Rotates pairs (e, e + d/2) of every head by position × θ^(−2e/d) (LLaMA's rotate_half convention). */
  private float[] rope(float[] x, int heads, int d, int position) {
    float[] out = x.clone();
    int half = d / 2;
    for (int head = 0; head < heads; head++) {
      for (int e = 0; e < half; e++) {
        double angle = position * Math.pow(ropeTheta, -2.0 * e / d);
        double a = x[head * d + e];
        double b = x[head * d + e + half];
        out[head * d + e] = (float) (a * Math.cos(angle) - b * Math.sin(angle));
        out[head * d + e + half] = (float) (b * Math.cos(angle) + a * Math.sin(angle));
      }
    }
    return out;
  }

  /** {@code x [in] · m [in, out]}. */
  private static float[] matVec(float[] x, float[] m, int in, int out) {
    double[] acc = new double[out];
    for (int i = 0; i < in; i++) {
      double xi = x[i];
      for (int o = 0; o < out; o++) acc[o] += xi * m[i * out + o];
    }
    float[] result = new float[out];
    for (int o = 0; o < out; o++) result[o] = (float) acc[o];
    return result;
  }

  private static void add(float[] x, float[] y) {
    for (int i = 0; i < x.length; i++) x[i] += y[i];
  }
}
