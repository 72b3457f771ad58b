package sphinxserve.runtime.graph;

import static sphinxserve.runtime.graph.GraphBuilder.intAttr;
import static sphinxserve.runtime.onnx.TensorProto.DataType.FLOAT;
import static sphinxserve.runtime.onnx.TensorProto.DataType.INT64;

import java.util.List;
import java.util.Map;
import sphinxserve.runtime.onnx.ModelProto;

/**
 * Writes the decoder graph: one batched step of a LLaMA decoder (RMSNorm, RoPE, grouped-query attention,
 * SwiGLU) over a ragged batch whose KV history lives in a paged pool. docs/BUNDLE.md documents every input
 * and output; the shapes below use T = tokens this step, B = sequences, Q = the longest chunk, MB = the
 * longest block table, R = logits rows, M = image rows.
 *
 * <pre>
 * input_ids [T] ─ Gather(embed_tokens) ──┐
 *   ids ≥ vocab select image_embeds[id − vocab] ─ Where ─▶ h [T,H]
 * per layer:  RMSNorm → q,k,v → RoPE(positions)
 *             k,v ─ ScatterND(kv_write_index) ─▶ present = past pool, updated IN PLACE
 *             pool ─ Gather(block_tables, axis 1) ─▶ [KH, B, L=MB·bs, D] history (no further copy)
 *             q gathered to [KH, B, G·Q, D] by query_index; scores + causal mask(positions); softmax; ·V
 *             back to [T, H] by token_index; o_proj; residual; RMSNorm; SwiGLU; residual
 * Gather(logits_index) → RMSNorm → lm_head → logits [R, V]
 * </pre>
 *
 * <p>Why this shape: ONNX Runtime's CPU provider has no paged-attention kernel. Passing the pool as input
 * and pinning the same buffer as the output makes ScatterND skip its copy and update the pool in place; a
 * Gather along the blocks axis then reads a sequence's history in logical order (head-major layout makes
 * each gathered run a contiguous {@code bs × D} block). DESIGN.md measured this at ~1.6× contiguous GQA.
 *
 * <p>{@link KvAddressing#CONTIGUOUS} writes the same model over a per-sequence contiguous cache
 * {@code [B, KH, C, D]} (no block tables): the baseline the benchmark compares against.
 */
public final class DecoderGraph {

  /** How the KV cache is addressed. */
  public enum KvAddressing {
    /** Pools {@code [KH, numBlocks, blockSize, D]}, histories gathered by block table. */
    PAGED,
    /** Caches {@code [B, KH, C, D]}, row b = the batch's sequence b, no gather. */
    CONTIGUOUS
  }

  /** Additive mask value for disallowed keys: finite, so fully masked padding rows never produce NaN. */
  static final float MASKED = -1e30f;

  private final DecoderShape shape;
  private final DecoderVariant variant;
  private final Weights weights;
  private final KvAddressing addressing;
  private final WeightQuantization quantization;
  private final GraphBuilder g = new GraphBuilder("sphinx_decoder");
  /** [1] int64: the pool's block size (PAGED) or the cache capacity C (CONTIGUOUS), read from past_key.0. */
  private String slotsPerRow;

  /** The linear weights of every layer, in graph order (the candidates for quantization besides lm_head). */
  private static final List<String> PROJECTIONS =
      List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

  private DecoderGraph(DecoderShape shape, DecoderVariant variant, Weights weights, KvAddressing addressing,
      WeightQuantization quantization, ExternalData external) {
    this.shape = shape;
    this.variant = variant;
    this.weights = weights;
    this.addressing = addressing;
    this.quantization = quantization;
    if (external != null) g.externalData(external);
  }

  /** Generates random weights for {@code shape} into {@code weights} (names as in docs/BUNDLE.md). */
  public static void initialiseWeights(DecoderShape shape, Weights weights) {
    int h = shape.hiddenSize();
    int q = shape.numHeads() * shape.headDim();
    int kv = shape.numKvHeads() * shape.headDim();
    weights.normal("embed_tokens", shape.vocabSize() * h, 1.0);
    for (int l = 0; l < shape.numLayers(); l++) {
      String p = "layers." + l + ".";
      weights.gain(p + "input_norm", h);
      weights.matrix(p + "q_proj", h, q);
      weights.matrix(p + "k_proj", h, kv);
      weights.matrix(p + "v_proj", h, kv);
      weights.matrix(p + "o_proj", q, h);
      weights.gain(p + "post_attention_norm", h);
      weights.matrix(p + "gate_proj", h, shape.intermediateSize());
      weights.matrix(p + "up_proj", h, shape.intermediateSize());
      weights.matrix(p + "down_proj", shape.intermediateSize(), h);
    }
    weights.gain("final_norm", h);
    // Larger than 1/√h so the random model's next-token distribution is peaked rather than flat.
    weights.normal("lm_head", h * shape.vocabSize(), 4.0 / Math.sqrt(h));
  }

  /**
   * The decoder model. The block size (PAGED) or capacity (CONTIGUOUS) is not baked in: the graph reads it
   * from the shape of {@code past_key.0}, so one bundle serves any block size.
   */
  public static ModelProto build(DecoderShape shape, Weights weights, KvAddressing addressing) {
    return build(shape, weights, addressing, WeightQuantization.NONE);
  }

  /** The decoder model with its linear weights stored as {@code quantization} says (MatMulNBits when quantized). */
  public static ModelProto build(DecoderShape shape, Weights weights, KvAddressing addressing, WeightQuantization quantization) {
    return build(shape, DecoderVariant.LLAMA2, weights, addressing, quantization, null);
  }

  /**
   * The decoder of a {@code variant} model; initializers of 4 KiB or more go to {@code external} when it is not
   * null (needed past 2 GB, and it keeps the builder's memory to about one tensor: {@code weights} may load
   * each tensor only when asked).
   */
  public static ModelProto build(DecoderShape shape, DecoderVariant variant, Weights weights, KvAddressing addressing,
      WeightQuantization quantization, ExternalData external) {
    return new DecoderGraph(shape, variant, weights, addressing, quantization, external).build();
  }

  /**
   * The weights {@code quantization} stores quantized, name → element type ({@code int4} / {@code int8}), sorted;
   * empty for float32. The embedding table (read by Gather), norms and RoPE tables are never quantized.
   */
  public static java.util.SortedMap<String, String> quantizedTensors(DecoderShape shape, WeightQuantization quantization) {
    java.util.SortedMap<String, String> out = new java.util.TreeMap<>();
    for (int l = 0; l < shape.numLayers(); l++) {
      for (String p : PROJECTIONS) {
        if (quantization.enabled()) out.put("layers." + l + "." + p, quantization.dtype());
      }
    }
    if (quantization.head().enabled()) out.put("lm_head", quantization.head().dtype());
    return out;
  }

  /**
   * {@code x · w (+ b)} for the linear weight {@code name [in, out]}: MatMul over float32, or MatMulNBits; the
   * bias {@code name.bias [out]} when {@code biased}.
   */
  private String linear(String x, String name, int in, int out, boolean biased) {
    WeightQuantization q = name.equals("lm_head") ? quantization.head() : quantization;
    String y = q.enabled()
        ? g.matMulNBits(x, name, weights.get(name), in, out, q)
        : g.matMul(x, g.weight(name, weights.get(name), in, out));
    return biased ? g.add(y, g.weight(name + ".bias", weights.get(name + ".bias"), out)) : y;
  }

  /**
   * {@code x · [w₁ | w₂ | …] (+ [b₁ | b₂ | …])}: the linear weights {@code names} (each {@code [in, outs[i]]}, same
   * input) as one matrix stored under {@code fusedName}, split back into one output per weight. One MatMul reading
   * one larger matrix runs closer to the memory bandwidth at batch 1 than several small ones (q/k/v are 512 × 512
   * and 512 × 128 in the bench model), and launches fewer kernels. Quantized per column block along the input, the
   * fused matrix holds exactly the codes and scales the separate ones would.
   */
  private List<String> fusedLinear(String x, String fusedName, List<String> names, int in, int[] outs, boolean biased) {
    int total = 0;
    for (int out : outs) total += out;
    float[] fused = new float[in * total];
    float[] fusedBias = biased ? new float[total] : null;
    int column = 0;
    for (int i = 0; i < names.size(); i++) {
      float[] w = weights.get(names.get(i));
      for (int r = 0; r < in; r++) System.arraycopy(w, r * outs[i], fused, r * total + column, outs[i]);
      if (biased) System.arraycopy(weights.get(names.get(i) + ".bias"), 0, fusedBias, column, outs[i]);
      column += outs[i];
    }
    String y = quantization.enabled()
        ? g.matMulNBits(x, fusedName, fused, in, total, quantization)
        : g.matMul(x, g.weight(fusedName, fused, in, total));
    if (biased) y = g.add(y, g.weight(fusedName + ".bias", fusedBias, total));
    long[] sizes = new long[outs.length];
    for (int i = 0; i < outs.length; i++) sizes[i] = outs[i];
    return g.opWithOutputs("Split", List.of(y, g.ints(sizes)), outs.length, intAttr("axis", -1));
  }

  /**
   * The output head over the final hidden states {@code [R, H]}. Tied to the embeddings, the float32 head is a
   * Gemm with the table {@code [V, H]} transposed (one copy of the table serves both); a quantized tied head
   * quantizes the table's transpose.
   */
  private String head(String normed, String table) {
    int h = shape.hiddenSize();
    int v = shape.vocabSize();
    if (!variant.tiedEmbeddings()) return linear(normed, "lm_head", h, v, false);
    WeightQuantization q = quantization.head();
    if (!q.enabled()) return g.op("Gemm", List.of(normed, table), intAttr("transB", 1));
    return g.matMulNBits(normed, "lm_head", transpose(weights.get("embed_tokens"), v, h), h, v, q);
  }

  /** {@code m [rows, cols]} transposed. */
  static float[] transpose(float[] m, int rows, int cols) {
    float[] t = new float[m.length];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
    }
    return t;
  }

  /** RoPE cos and sin tables {@code [maxContextTokens, headDim]} without scaling. */
  public static float[][] ropeTables(DecoderShape shape) {
    return ropeTables(shape, RopeScaling.NONE);
  }

  /** RoPE cos and sin tables {@code [maxContextTokens, headDim]}, halves duplicated (LLaMA rotate_half form). */
  public static float[][] ropeTables(DecoderShape shape, RopeScaling scaling) {
    int d = shape.headDim();
    int half = d / 2;
    double[] inverseFrequencies = scaling.inverseFrequencies(d, shape.ropeTheta());
    float[] cos = new float[shape.maxContextTokens() * d];
    float[] sin = new float[shape.maxContextTokens() * d];
    for (int pos = 0; pos < shape.maxContextTokens(); pos++) {
      for (int i = 0; i < half; i++) {
        double angle = pos * inverseFrequencies[i];
        cos[pos * d + i] = cos[pos * d + i + half] = (float) Math.cos(angle);
        sin[pos * d + i] = sin[pos * d + i + half] = (float) Math.sin(angle);
      }
    }
    return new float[][] {cos, sin};
  }

  private ModelProto build() {
    int h = shape.hiddenSize();
    int kh = shape.numKvHeads();
    int d = shape.headDim();
    int v = shape.vocabSize();

    String inputIds = g.input("input_ids", INT64, "T");
    String imageEmbeds = g.input("image_embeds", FLOAT, "M", h);
    String positions = g.input("positions", INT64, "T");
    String slotMapping = g.input("slot_mapping", INT64, "T");
    String blockTables = addressing == KvAddressing.PAGED ? g.input("block_tables", INT64, "B", "MB") : null;
    String queryIndex = g.input("query_index", INT64, "B", "Q");
    String tokenIndex = g.input("token_index", INT64, "T");
    String logitsIndex = g.input("logits_index", INT64, "R");
    String[] pastKeys = new String[shape.numLayers()];
    String[] pastValues = new String[shape.numLayers()];
    for (int l = 0; l < shape.numLayers(); l++) {
      Object[] dims = addressing == KvAddressing.PAGED
          ? new Object[] {kh, "num_blocks", "block_size", d}
          : new Object[] {"B", kh, "capacity", d};
      pastKeys[l] = g.input("past_key." + l, FLOAT, dims);
      pastValues[l] = g.input("past_value." + l, FLOAT, dims);
    }

    // Embeddings: text rows from the table, image rows (ids >= vocab) from this step's image_embeds.
    String table = g.weight("embed_tokens", weights.get("embed_tokens"), v, h);
    String textIds = g.op("Min", inputIds, g.ints(v - 1));
    String imageRows = g.op("Max", g.sub(inputIds, g.ints(v)), g.ints(0));
    String isImage = g.unsqueeze(g.op("GreaterOrEqual", inputIds, g.ints(v)), 1);
    String hidden = g.op("Where", List.of(isImage, g.gather(imageEmbeds, imageRows, 0), g.gather(table, textIds, 0)));

    // RotaryEmbedding reads half-width tables (the rotate_half form's two halves are equal) at [1, T] positions.
    float[][] rope = ropeTables(shape, variant.ropeScaling());
    String cos = g.weight("rope_cos", firstHalves(rope[0], d), shape.maxContextTokens(), d / 2);
    String sin = g.weight("rope_sin", firstHalves(rope[1], d), shape.maxContextTokens(), d / 2);
    String ropePositions = g.unsqueeze(positions, 0);

    slotsPerRow = g.dim(pastKeys[0], 2);
    String writeIndex = kvWriteIndex(slotMapping);
    String mask = causalMask(positions, queryIndex, blockTables);

    // The residual stream travels as (x, delta): each layer's first norm adds the previous layer's MLP output.
    String delta = null;
    for (int l = 0; l < shape.numLayers(); l++) {
      String[] next = layer(l, hidden, delta, cos, sin, ropePositions, writeIndex, blockTables, queryIndex, tokenIndex,
          mask, pastKeys[l], pastValues[l]);
      hidden = next[0];
      delta = next[1];
    }

    String last = g.gather(delta == null ? hidden : g.add(hidden, delta), logitsIndex, 0);
    String normed = g.rmsNorm(last, g.weight("final_norm", weights.get("final_norm"), h), shape.rmsNormEps());
    String logits = head(normed, table);
    g.output(logits, "logits", FLOAT, "R", v);

    return g.build("SPHINX-shaped LLaMA decoder, one batched step over a " + addressing.name().toLowerCase() + " KV cache",
        Map.of("kv_addressing", addressing.name().toLowerCase()));
  }

  /**
   * One decoder layer over the residual stream {@code x + delta} ({@code delta} null for the first layer); returns
   * the next {@code (x, delta)}: the stream after attention and the MLP's output still to be added.
   */
  private String[] layer(int l, String x, String delta, String cos, String sin, String ropePositions, String writeIndex,
      String blockTables, String queryIndex, String tokenIndex, String mask, String pastKey, String pastValue) {
    int h = shape.hiddenSize();
    int nh = shape.numHeads();
    int kh = shape.numKvHeads();
    int d = shape.headDim();
    int groups = shape.groupSize();
    String p = "layers." + l + ".";

    String inputNorm = g.weight(p + "input_norm", weights.get(p + "input_norm"), h);
    String n;
    if (delta == null) {
      n = g.rmsNorm(x, inputNorm, shape.rmsNormEps());
    } else {
      List<String> normedAndSum = g.addRmsNorm(x, delta, inputNorm, shape.rmsNormEps());
      n = normedAndSum.get(0);
      x = normedAndSum.get(1);
    }
    boolean ab = variant.attentionBias();
    List<String> qkv = fusedLinear(n, p + "qkv_proj", List.of(p + "q_proj", p + "k_proj", p + "v_proj"), h,
        new int[] {nh * d, kh * d, kh * d}, ab);
    String q = g.reshape(rope(qkv.get(0), nh, cos, sin, ropePositions), -1, nh, d);
    String k = g.reshape(rope(qkv.get(1), kh, cos, sin, ropePositions), -1, kh, d);
    String v = g.reshape(qkv.get(2), -1, kh, d);

    // Write this step's K/V into the cache in place, then read every sequence's history.
    String keyCache = writeKv(k, pastKey, writeIndex, "present_key." + l);
    String valueCache = writeKv(v, pastValue, writeIndex, "present_value." + l);
    // Attention runs over two "outer" axes: (KH, B) for the paged pool, whose gathered history is head-major,
    // so neither K nor V is copied into another layout (the K transpose swaps the last two axes only, which
    // ONNX Runtime folds into the MatMul); (B, KH) for the contiguous cache, which is batch-major.
    boolean paged = addressing == KvAddressing.PAGED;
    String keysT; // [outer, outer, D, L]
    String values; // [outer, outer, L, D]
    if (paged) {
      keysT = g.transpose(g.reshape(g.gather(keyCache, blockTables, 1), 0, 0, -1, d), 0, 1, 3, 2); // [KH, B, D, L]
      values = g.reshape(g.gather(valueCache, blockTables, 1), 0, 0, -1, d); // [KH, B, L, D]
    } else {
      keysT = g.transpose(keyCache, 0, 1, 3, 2); // [B, KH, D, L]
      values = valueCache;
    }

    // Queries per sequence: [T, NH, D] → [B, Q, KH, G, D] → [outer, outer, G·Q, D], pre-scaled by 1/√D.
    String qs = g.mul(g.gather(q, queryIndex, 0), g.scalar((float) (1.0 / Math.sqrt(d))));
    qs = g.reshape(qs, 0, 0, kh, groups, d);
    qs = g.reshape(paged ? g.transpose(qs, 2, 0, 3, 1, 4) : g.transpose(qs, 0, 2, 3, 1, 4), 0, 0, -1, d);
    String scores = g.add(g.matMul(qs, keysT), mask); // [outer, outer, G·Q, L]
    String attention = g.matMul(g.op("Softmax", scores, intAttr("axis", -1)), values); // [outer, outer, G·Q, D]
    attention = g.reshape(attention, 0, 0, groups, -1, d); // [outer, outer, G, Q, D]
    attention = paged ? g.transpose(attention, 1, 3, 0, 2, 4) : g.transpose(attention, 0, 3, 1, 2, 4); // [B, Q, KH, G, D]
    attention = g.reshape(attention, -1, (long) nh * d);
    attention = g.gather(attention, tokenIndex, 0); // back to [T, NH·D]
    List<String> normedAndSum = g.addRmsNorm(x, linear(attention, p + "o_proj", nh * d, h, ab),
        g.weight(p + "post_attention_norm", weights.get(p + "post_attention_norm"), h), shape.rmsNormEps());
    String n2 = normedAndSum.get(0);
    x = normedAndSum.get(1);
    int inter = shape.intermediateSize();
    boolean mb = variant.mlpBias();
    List<String> gateUp = fusedLinear(n2, p + "gate_up_proj", List.of(p + "gate_proj", p + "up_proj"), h, new int[] {inter, inter}, mb);
    return new String[] {x, linear(g.mul(g.silu(gateUp.get(0)), gateUp.get(1)), p + "down_proj", inter, h, mb)};
  }

  /**
   * LLaMA rotary embedding ({@code x·cos + rotate_half(x)·sin}) of {@code x [T, heads·D]}, as ONNX Runtime's
   * {@code com.microsoft.RotaryEmbedding} kernel (one node where the elementwise form took seven); returns
   * {@code [1, T, heads·D]}.
   */
  private String rope(String x, int heads, String cos, String sin, String ropePositions) {
    String batched = g.reshape(x, 1, -1, (long) heads * shape.headDim());
    return g.contribOp("RotaryEmbedding", List.of(batched, ropePositions, cos, sin), 1,
        intAttr("interleaved", 0), intAttr("num_heads", heads)).get(0);
  }

  /** The first {@code d/2} columns of each row of {@code table [rows, d]}. */
  private static float[] firstHalves(float[] table, int d) {
    int rows = table.length / d;
    float[] out = new float[rows * (d / 2)];
    for (int r = 0; r < rows; r++) System.arraycopy(table, r * d, out, r * (d / 2), d / 2);
    return out;
  }

  /** ScatterND of {@code kv [T, KH, D]} into the cache; the output is the graph output {@code outputName}. */
  private String writeKv(String kv, String cache, String writeIndex, String outputName) {
    String updates = addressing == KvAddressing.PAGED ? g.transpose(kv, 1, 0, 2) : kv; // [KH,T,D] | [T,KH,D]
    g.opNamed(outputName, "ScatterND", List.of(cache, writeIndex, updates));
    Object[] dims = addressing == KvAddressing.PAGED
        ? new Object[] {shape.numKvHeads(), "num_blocks", "block_size", shape.headDim()}
        : new Object[] {"B", shape.numKvHeads(), "capacity", shape.headDim()};
    g.output(outputName, outputName, FLOAT, dims);
    return outputName;
  }

  /**
   * ScatterND indices for this step's K/V, shared by all layers. PAGED: {@code [KH, T, 3]} of
   * (head, slot / blockSize, slot % blockSize). CONTIGUOUS: {@code [T, KH, 3]} of (slot / C, head, slot % C),
   * where the runtime passes {@code slot = b·C + position}.
   */
  private String kvWriteIndex(String slotMapping) {
    int kh = shape.numKvHeads();
    String major = g.unsqueeze(g.div(slotMapping, slotsPerRow), 1); // [T,1]: block | sequence row
    String minor = g.unsqueeze(g.op("Mod", slotMapping, slotsPerRow), 1); // [T,1]: slot in block | position
    String numTokens = g.dim(slotMapping, 0);
    String heads = g.op("Range", g.scalar(0L), g.scalar((long) kh), g.scalar(1L));
    if (addressing == KvAddressing.PAGED) {
      String expandShape = g.concat(0, g.ints(kh), numTokens, g.ints(1)); // [KH, T, 1]
      return g.concat(2,
          g.op("Expand", g.reshape(heads, kh, 1, 1), expandShape),
          g.op("Expand", g.unsqueeze(major, 0), expandShape),
          g.op("Expand", g.unsqueeze(minor, 0), expandShape));
    }
    String expandShape = g.concat(0, numTokens, g.ints(kh), g.ints(1)); // [T, KH, 1]
    return g.concat(2,
        g.op("Expand", g.unsqueeze(major, 2), expandShape),
        g.op("Expand", g.reshape(heads, 1, kh, 1), expandShape),
        g.op("Expand", g.unsqueeze(minor, 2), expandShape));
  }

  /**
   * Additive causal mask, {@code [1, B, G·Q, L]} (paged) or {@code [B, 1, G·Q, L]} (contiguous): key position j is visible to a query at position p iff
   * {@code j <= p}. Key positions are logical (block table order), so the same rule hides padded block-table
   * entries, the unwritten tail of the last block, and future tokens of the same chunk.
   */
  private String causalMask(String positions, String queryIndex, String blockTables) {
    String numKeys = addressing == KvAddressing.PAGED ? g.mul(g.dim(blockTables, 1), slotsPerRow) : slotsPerRow;
    String keyPositions = g.op("Range", g.scalar(0L), g.op("Squeeze", numKeys, g.ints(0)), g.scalar(1L)); // [L]
    String queryPositions = g.unsqueeze(g.gather(positions, queryIndex, 0), 2); // [B, Q, 1]
    String visible = g.op("LessOrEqual", keyPositions, queryPositions); // [B, Q, L]
    String mask = g.op("Where", List.of(visible, g.scalar(0f), g.scalar(MASKED)));
    // Rows of the grouped scores are ordered g·Q + j: tile the Q rows G times; broadcast over the KV heads.
    String tiled = g.op("Tile", mask, g.ints(1, shape.groupSize(), 1)); // [B, G·Q, L]
    return g.unsqueeze(tiled, addressing == KvAddressing.PAGED ? 0 : 1);
  }
}
