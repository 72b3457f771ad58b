package sphinxserve.runtime.graph;

import static sphinxserve.runtime.graph.GraphBuilder.intAttr;
import static sphinxserve.runtime.graph.GraphBuilder.ints;
import static sphinxserve.runtime.onnx.TensorProto.DataType.FLOAT;

import java.util.List;
import java.util.Map;
import sphinxserve.runtime.onnx.ModelProto;

/**
 * Writes the vision graph: {@code pixel_values [N, 3, S, S] → image_embeds [N, T_view, H]}, the shape of
 * SPHINX's mixture of visual experts per view.
 *
 * <pre>
 *            ┌─ ViT: patch conv → [cls; patches] + pos → blocks → LN ─────────┐ [N, 1+g², Cv]
 * pixels ────┤                                                                  ├ concat channels → Linear → LN ─┐
 *            └─ conv: patch conv → GELU → depthwise 3×3 → GELU → + → 1×1 ──────┘ [N, 1+g², Cc]                  │
 *                      (mean-pooled token first, like the ViT's cls)                                             │
 *   learned queries ── cross-attention over the ViT tokens → Linear → LN ────────────────── [N, q, H] ──────────┤
 *   [start] ++ patch tokens ++ query tokens ++ [end]  ─────────────────────────────────▶ [N, 1+g²+q+2, H] ◀────┘
 * </pre>
 *
 * <p>The real SPHINX uses pretrained CLIP ViT, CLIP ConvNeXt and DINOv2 experts plus a BLIP-2 Q-Former; this
 * graph has the same branch structure and token geometry with small random weights.
 */
public final class VisionGraph {

  private static final float LN_EPS = 1e-5f;

  private final VisionShape shape;
  private final Weights weights;
  private final GraphBuilder g = new GraphBuilder("sphinx_vision");

  private VisionGraph(VisionShape shape, Weights weights) {
    this.shape = shape;
    this.weights = weights;
  }

  /** Generates random weights for {@code shape} into {@code weights}. */
  public static void initialiseWeights(VisionShape shape, Weights weights) {
    int p = shape.patchSize();
    int cv = shape.vitWidth();
    int cc = shape.convWidth();
    int h = shape.hiddenSize();
    weights.normal("vit.patch_embed.weight", cv * 3 * p * p, 1.0 / Math.sqrt(3.0 * p * p));
    weights.constant("vit.patch_embed.bias", cv, 0f);
    weights.normal("vit.class_embedding", cv, 0.5);
    weights.normal("vit.position_embedding", shape.patchTokens() * cv, 0.1);
    for (int l = 0; l < shape.vitLayers(); l++) {
      String b = "vit.blocks." + l + ".";
      weights.gain(b + "ln1.weight", cv);
      weights.constant(b + "ln1.bias", cv, 0f);
      for (String m : List.of("q", "k", "v", "o")) {
        weights.matrix(b + m + "_proj.weight", cv, cv);
        weights.constant(b + m + "_proj.bias", cv, 0f);
      }
      weights.gain(b + "ln2.weight", cv);
      weights.constant(b + "ln2.bias", cv, 0f);
      weights.matrix(b + "fc1.weight", cv, 4 * cv);
      weights.constant(b + "fc1.bias", 4 * cv, 0f);
      weights.matrix(b + "fc2.weight", 4 * cv, cv);
      weights.constant(b + "fc2.bias", cv, 0f);
    }
    weights.gain("vit.ln_post.weight", cv);
    weights.constant("vit.ln_post.bias", cv, 0f);

    weights.normal("conv.stem.weight", cc * 3 * p * p, 1.0 / Math.sqrt(3.0 * p * p));
    weights.constant("conv.stem.bias", cc, 0f);
    weights.normal("conv.dw.weight", cc * 9, 1.0 / 3.0);
    weights.constant("conv.dw.bias", cc, 0f);
    weights.normal("conv.pw.weight", cc * cc, 1.0 / Math.sqrt(cc));
    weights.constant("conv.pw.bias", cc, 0f);

    weights.matrix("proj.weight", cv + cc, h);
    weights.constant("proj.bias", h, 0f);
    weights.gain("proj.ln.weight", h);
    weights.constant("proj.ln.bias", h, 0f);

    weights.normal("qformer.queries", shape.numQueries() * cv, 1.0);
    for (String m : List.of("q", "k", "v", "o")) {
      weights.matrix("qformer." + m + "_proj.weight", cv, cv);
      weights.constant("qformer." + m + "_proj.bias", cv, 0f);
    }
    weights.matrix("qformer.proj.weight", cv, h);
    weights.constant("qformer.proj.bias", h, 0f);
    weights.gain("qformer.ln.weight", h);
    weights.constant("qformer.ln.bias", h, 0f);

    weights.normal("start_embedding", h, 1.0);
    weights.normal("end_embedding", h, 1.0);
  }

  /** The vision model. */
  public static ModelProto build(VisionShape shape, Weights weights) {
    return new VisionGraph(shape, weights).build();
  }

  private ModelProto build() {
    int s = shape.viewSize();
    int h = shape.hiddenSize();
    String pixels = g.input("pixel_values", FLOAT, "N", 3, s, s);
    String batch = g.dim(pixels, 0); // [1] = N

    String vitTokens = vit(pixels, batch); // [N, 1+g², Cv]
    String convTokens = convBranch(pixels); // [N, 1+g², Cc]
    String patchTokens = g.concat(2, vitTokens, convTokens);
    patchTokens = g.layerNorm(g.linear(patchTokens, w("proj.weight", shape.vitWidth() + shape.convWidth(), h), w("proj.bias", h)),
        w("proj.ln.weight", h), w("proj.ln.bias", h), LN_EPS);
    String queryTokens = queryBranch(vitTokens, batch); // [N, q, H]

    String start = g.op("Expand", w("start_embedding", 1, 1, h), g.concat(0, batch, g.ints(1, h)));
    String end = g.op("Expand", w("end_embedding", 1, 1, h), g.concat(0, batch, g.ints(1, h)));
    String out = g.concat(1, start, patchTokens, queryTokens, end);
    g.output(out, "image_embeds", FLOAT, "N", shape.tokensPerView(), h);
    return g.build("SPHINX-shaped vision encoder: ViT, conv and learned-query branches per view",
        Map.of("tokens_per_view", Integer.toString(shape.tokensPerView())));
  }

  /** Pre-LN ViT: patch embedding, class token, position embedding, blocks, final LN. */
  private String vit(String pixels, String batch) {
    int cv = shape.vitWidth();
    String patches = patchify(pixels, "vit.patch_embed", cv); // [N, g², Cv]
    String cls = g.op("Expand", w("vit.class_embedding", 1, 1, cv), g.concat(0, batch, g.ints(1, cv)));
    String x = g.add(g.concat(1, cls, patches), w("vit.position_embedding", 1, shape.patchTokens(), cv));
    for (int l = 0; l < shape.vitLayers(); l++) {
      String b = "vit.blocks." + l + ".";
      String n = g.layerNorm(x, w(b + "ln1.weight", cv), w(b + "ln1.bias", cv), LN_EPS);
      x = g.add(x, attention(n, n, b, cv));
      String n2 = g.layerNorm(x, w(b + "ln2.weight", cv), w(b + "ln2.bias", cv), LN_EPS);
      String mlp = g.gelu(g.linear(n2, w(b + "fc1.weight", cv, 4 * cv), w(b + "fc1.bias", 4 * cv)));
      x = g.add(x, g.linear(mlp, w(b + "fc2.weight", 4 * cv, cv), w(b + "fc2.bias", cv)));
    }
    return g.layerNorm(x, w("vit.ln_post.weight", cv), w("vit.ln_post.bias", cv), LN_EPS);
  }

  /** ConvNeXt-like branch: patch stem, depthwise 3×3 with residual, pointwise; a mean-pooled token first. */
  private String convBranch(String pixels) {
    int cc = shape.convWidth();
    int p = shape.patchSize();
    String stem = g.gelu(g.op("Conv", List.of(pixels, w("conv.stem.weight", cc, 3, p, p), w("conv.stem.bias", cc)),
        ints("kernel_shape", p, p), ints("strides", p, p)));
    String dw = g.gelu(g.op("Conv", List.of(stem, w("conv.dw.weight", cc, 1, 3, 3), w("conv.dw.bias", cc)),
        ints("kernel_shape", 3, 3), ints("pads", 1, 1, 1, 1), intAttr("group", cc)));
    String pw = g.op("Conv", List.of(g.add(stem, dw), w("conv.pw.weight", cc, cc, 1, 1), w("conv.pw.bias", cc)),
        ints("kernel_shape", 1, 1));
    String tokens = g.transpose(g.reshape(pw, 0, cc, -1), 0, 2, 1); // [N, g², Cc]
    String pooled = g.op("ReduceMean", tokens, ints("axes", 1), intAttr("keepdims", 1));
    return g.concat(1, pooled, tokens);
  }

  /** Learned queries cross-attending over the ViT tokens, projected to the decoder width. */
  private String queryBranch(String vitTokens, String batch) {
    int cv = shape.vitWidth();
    int h = shape.hiddenSize();
    int q = shape.numQueries();
    String queries = g.op("Expand", w("qformer.queries", 1, q, cv), g.concat(0, batch, g.ints(q, cv)));
    String attended = g.add(queries, attention(queries, vitTokens, "qformer.", cv));
    return g.layerNorm(g.linear(attended, w("qformer.proj.weight", cv, h), w("qformer.proj.bias", h)),
        w("qformer.ln.weight", h), w("qformer.ln.bias", h), LN_EPS);
  }

  /** Multi-head attention of {@code query [N, Sq, C]} over {@code context [N, Sk, C]}, output projected. */
  private String attention(String query, String context, String prefix, int width) {
    int heads = shape.vitHeads();
    int d = width / heads;
    String q = heads(g.linear(query, w(prefix + "q_proj.weight", width, width), w(prefix + "q_proj.bias", width)), heads, d);
    String k = heads(g.linear(context, w(prefix + "k_proj.weight", width, width), w(prefix + "k_proj.bias", width)), heads, d);
    String v = heads(g.linear(context, w(prefix + "v_proj.weight", width, width), w(prefix + "v_proj.bias", width)), heads, d);
    String scores = g.mul(g.matMul(q, g.transpose(k, 0, 1, 3, 2)), g.scalar((float) (1.0 / Math.sqrt(d))));
    String out = g.matMul(g.op("Softmax", scores, intAttr("axis", -1)), v); // [N, heads, Sq, d]
    out = g.reshape(g.transpose(out, 0, 2, 1, 3), 0, 0, width);
    return g.linear(out, w(prefix + "o_proj.weight", width, width), w(prefix + "o_proj.bias", width));
  }

  private String heads(String x, int heads, int d) {
    return g.transpose(g.reshape(x, 0, 0, heads, d), 0, 2, 1, 3);
  }

  /** Non-overlapping patch convolution flattened to tokens {@code [N, g², channels]}. */
  private String patchify(String pixels, String prefix, int channels) {
    int p = shape.patchSize();
    String conv = g.op("Conv", List.of(pixels, w(prefix + ".weight", channels, 3, p, p), w(prefix + ".bias", channels)),
        ints("kernel_shape", p, p), ints("strides", p, p));
    return g.transpose(g.reshape(conv, 0, channels, -1), 0, 2, 1);
  }

  /** The weight {@code name} as an initializer of shape {@code dims} (added once). */
  private String w(String name, long... dims) {
    return g.weightOnce(name, weights.get(name), dims);
  }
}
