package sphinxserve.runtime.testing.checkpoints;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Tensor;

/**
 * An independent LLaMA forward pass computed straight from a checkpoint folder, in double precision: it reads
 * the safetensors files itself ({@link RawSafetensors}, not the production loader), shares no code with the
 * production graph builder, and recomputes every position of the sequence (no KV cache).
 *
 * <p>Two layouts, each computed natively:
 * <ul>
 *   <li>Hugging Face ({@code config.json}, {@code model.safetensors} or shards with {@code
 *       model.safetensors.index.json}): RoPE in the rotate-half form on pairs {@code (e, e + D/2)};
 *   <li>Meta ({@code params.json}, {@code consolidated.safetensors}): RoPE as Meta's complex multiplication on
 *       interleaved pairs {@code (2i, 2i+1)}; the weights are used as stored, not permuted into HF order.
 * </ul>
 *
 * <p>The forward: embeddings → per layer {@code x += o(attn(rope(q), rope(k), v))} over {@code RMSNorm(x)·g} with
 * GQA (query head {@code h} reads KV head {@code h / (heads/kvHeads)}), a causal mask and scale {@code
 * 1/√headDim}, then {@code x += down(silu(gate)·up)} over the second norm; final norm; {@code lm_head} (or the
 * embedding table when tied). Biases where {@code attention_bias}/{@code mlp_bias} say (o_proj's with
 * attention_bias, as in transformers). RoPE frequencies {@code θ^(−2i/D)} with transformers' {@code linear} and
 * {@code llama3} scaling ({@code modeling_rope_utils.py}). transformers computes the angles in float32 while this
 * uses doubles; the difference is about 1e-7 of the angle, far under a 1e-4 logits tolerance at small positions.
 *
 * <p>Loading is strict: a missing tensor, a wrong shape, or a tensor the model does not use (other than HF's
 * legacy {@code rotary_emb.inv_freq}) is an {@link IOException} naming it.
 */
public final class ReferenceLlama {

  /** The folder layout a model was read from. */
  public enum Layout { HF, META }

  /** The architecture read from the folder. */
  public record Config(Layout layout, int vocabSize, int hiddenSize, int numLayers, int numHeads, int numKvHeads,
      int headDim, int intermediateSize, double rmsNormEps, double ropeTheta, boolean tiedEmbeddings,
      int maxPositionEmbeddings) {}

  private static final ObjectMapper JSON = new ObjectMapper();

  private record Layer(double[] attentionNorm, double[] wq, double[] bq, double[] wk, double[] bk, double[] wv,
      double[] bv, double[] wo, double[] bo, double[] ffnNorm, double[] gate, double[] bGate, double[] up,
      double[] bUp, double[] down, double[] bDown) {}

  private final Config config;
  private final double[] inverseFrequencies;
  private final int bosTokenId;
  private final List<Integer> eosTokenIds;
  private final double[] embeddings;
  private final double[] head;
  private final double[] finalNorm;
  private final Layer[] layers;

  private ReferenceLlama(Config config, double[] inverseFrequencies, int bosTokenId, List<Integer> eosTokenIds,
      double[] embeddings, double[] head, double[] finalNorm, Layer[] layers) {
    this.config = config;
    this.inverseFrequencies = inverseFrequencies;
    this.bosTokenId = bosTokenId;
    this.eosTokenIds = List.copyOf(eosTokenIds);
    this.embeddings = embeddings;
    this.head = head;
    this.finalNorm = finalNorm;
    this.layers = layers;
  }

  /**
   * Reads the model in {@code dir}: Hugging Face layout when it has {@code config.json}, Meta layout when it has
   * {@code params.json}.
   *
   * @throws IOException when files are missing or inconsistent (the message names the file or tensor)
   */
  public static ReferenceLlama load(Path dir) throws IOException {
    if (Files.exists(dir.resolve("config.json"))) return loadHf(dir);
    if (Files.exists(dir.resolve("params.json"))) return loadMeta(dir);
    throw new IOException(dir + ": neither config.json (Hugging Face) nor params.json (Meta)");
  }

  // ---------------------------------------------------------------------------------------------- loading

  private static ReferenceLlama loadHf(Path dir) throws IOException {
    JsonNode c = JSON.readTree(dir.resolve("config.json").toFile());
    if (!c.path("model_type").asText().equals("llama")) throw new IOException(dir + "/config.json: model_type is not llama: " + c.path("model_type"));
    int hidden = required(c, "hidden_size");
    int heads = required(c, "num_attention_heads");
    int kvHeads = c.hasNonNull("num_key_value_heads") ? c.get("num_key_value_heads").asInt() : heads;
    int headDim = c.hasNonNull("head_dim") ? c.get("head_dim").asInt() : hidden / heads;
    int ffn = required(c, "intermediate_size");
    int numLayers = required(c, "num_hidden_layers");
    int vocab = required(c, "vocab_size");
    boolean tied = c.path("tie_word_embeddings").asBoolean(false);
    boolean attentionBias = c.path("attention_bias").asBoolean(false);
    boolean mlpBias = c.path("mlp_bias").asBoolean(false);
    // transformers 4.x: rope_theta + rope_scaling; 5.x: rope_parameters {rope_type, rope_theta, ...}.
    JsonNode rope = c.hasNonNull("rope_scaling") ? c.get("rope_scaling") : c.path("rope_parameters");
    double theta = c.hasNonNull("rope_theta") ? c.get("rope_theta").asDouble() : rope.path("rope_theta").asDouble(10_000);
    Config config = new Config(Layout.HF, vocab, hidden, numLayers, heads, kvHeads, headDim, ffn,
        c.path("rms_norm_eps").asDouble(1e-6), theta, tied, c.path("max_position_embeddings").asInt(2048));
    checkHeads(config, dir);

    Weights w = new Weights(dir, readHfTensors(dir));
    int q = heads * headDim;
    int kv = kvHeads * headDim;
    double[] embeddings = w.take("model.embed_tokens.weight", vocab, hidden);
    Layer[] layers = new Layer[numLayers];
    for (int l = 0; l < numLayers; l++) {
      String p = "model.layers." + l + ".";
      String a = p + "self_attn.";
      String m = p + "mlp.";
      layers[l] = new Layer(
          w.take(p + "input_layernorm.weight", hidden),
          w.take(a + "q_proj.weight", q, hidden), attentionBias ? w.take(a + "q_proj.bias", q) : null,
          w.take(a + "k_proj.weight", kv, hidden), attentionBias ? w.take(a + "k_proj.bias", kv) : null,
          w.take(a + "v_proj.weight", kv, hidden), attentionBias ? w.take(a + "v_proj.bias", kv) : null,
          w.take(a + "o_proj.weight", hidden, q), attentionBias ? w.take(a + "o_proj.bias", hidden) : null,
          w.take(p + "post_attention_layernorm.weight", hidden),
          w.take(m + "gate_proj.weight", ffn, hidden), mlpBias ? w.take(m + "gate_proj.bias", ffn) : null,
          w.take(m + "up_proj.weight", ffn, hidden), mlpBias ? w.take(m + "up_proj.bias", ffn) : null,
          w.take(m + "down_proj.weight", hidden, ffn), mlpBias ? w.take(m + "down_proj.bias", hidden) : null);
      w.ignore(a + "rotary_emb.inv_freq");
    }
    double[] finalNorm = w.take("model.norm.weight", hidden);
    double[] head = tied ? embeddings : w.take("lm_head.weight", vocab, hidden);
    w.checkAllUsed();

    JsonNode generation = Files.exists(dir.resolve("generation_config.json"))
        ? JSON.readTree(dir.resolve("generation_config.json").toFile()) : JSON.createObjectNode();
    JsonNode eos = generation.hasNonNull("eos_token_id") ? generation.get("eos_token_id") : c.path("eos_token_id");
    JsonNode bos = generation.hasNonNull("bos_token_id") ? generation.get("bos_token_id") : c.path("bos_token_id");
    return new ReferenceLlama(config, inverseFrequencies(theta, headDim, rope.isObject() ? rope : null),
        bos.asInt(-1), ids(eos), embeddings, head, finalNorm, layers);
  }

  private static ReferenceLlama loadMeta(Path dir) throws IOException {
    JsonNode p = JSON.readTree(dir.resolve("params.json").toFile());
    if (p.path("use_scaled_rope").asBoolean(false)) throw new IOException(dir + "/params.json: use_scaled_rope is not supported by the reference");
    int dim = required(p, "dim");
    int heads = required(p, "n_heads");
    int kvHeads = p.hasNonNull("n_kv_heads") ? p.get("n_kv_heads").asInt() : heads;
    int numLayers = required(p, "n_layers");
    int vocab = required(p, "vocab_size");
    int ffn;
    if (p.hasNonNull("intermediate_size")) {
      ffn = p.get("intermediate_size").asInt();
    } else {
      // Meta's FeedForward: hidden = int(2 * 4 * dim / 3); int(ffn_dim_multiplier * hidden); round up to multiple_of.
      int multipleOf = required(p, "multiple_of");
      int h = (int) (2 * (4L * dim) / 3);
      if (p.hasNonNull("ffn_dim_multiplier")) h = (int) (p.get("ffn_dim_multiplier").asDouble() * h);
      ffn = multipleOf * ((h + multipleOf - 1) / multipleOf);
    }
    double theta = p.path("rope_theta").asDouble(10_000);
    Config config = new Config(Layout.META, vocab, dim, numLayers, heads, kvHeads, dim / heads, ffn,
        p.path("norm_eps").asDouble(1e-5), theta, false, p.path("max_seq_len").asInt(2048));
    checkHeads(config, dir);
    if (dim % heads != 0) throw new IOException(dir + "/params.json: dim " + dim + " is not a multiple of n_heads " + heads);

    Weights w = new Weights(dir, RawSafetensors.read(dir.resolve("consolidated.safetensors")));
    int d = dim / heads;
    double[] embeddings = w.take("tok_embeddings.weight", vocab, dim);
    Layer[] layers = new Layer[numLayers];
    for (int l = 0; l < numLayers; l++) {
      String a = "layers." + l + ".attention.";
      String f = "layers." + l + ".feed_forward.";
      layers[l] = new Layer(
          w.take("layers." + l + ".attention_norm.weight", dim),
          w.take(a + "wq.weight", heads * d, dim), null,
          w.take(a + "wk.weight", kvHeads * d, dim), null,
          w.take(a + "wv.weight", kvHeads * d, dim), null,
          w.take(a + "wo.weight", dim, heads * d), null,
          w.take("layers." + l + ".ffn_norm.weight", dim),
          w.take(f + "w1.weight", ffn, dim), null,
          w.take(f + "w3.weight", ffn, dim), null,
          w.take(f + "w2.weight", dim, ffn), null);
    }
    double[] finalNorm = w.take("norm.weight", dim);
    double[] head = w.take("output.weight", vocab, dim);
    w.checkAllUsed();

    int bos = 1;
    List<Integer> eos = List.of(2);
    Path tokenizer = dir.resolve("tokenizer.json");
    if (Files.exists(tokenizer)) {
      for (JsonNode added : JSON.readTree(tokenizer.toFile()).path("added_tokens")) {
        if (added.path("content").asText().equals("<s>")) bos = added.path("id").asInt();
        if (added.path("content").asText().equals("</s>")) eos = List.of(added.path("id").asInt());
      }
    }
    return new ReferenceLlama(config, inverseFrequencies(theta, d, null), bos, eos, embeddings, head, finalNorm, layers);
  }

  private static void checkHeads(Config c, Path dir) throws IOException {
    if (c.numKvHeads() <= 0 || c.numHeads() % c.numKvHeads() != 0) {
      throw new IOException(dir + ": " + c.numHeads() + " heads are not a multiple of " + c.numKvHeads() + " KV heads");
    }
    if (c.headDim() % 2 != 0) throw new IOException(dir + ": odd head dimension " + c.headDim());
  }

  private static int required(JsonNode node, String field) throws IOException {
    if (!node.hasNonNull(field) || !node.get(field).canConvertToInt()) throw new IOException("missing integer field " + field + " in " + node);
    return node.get(field).asInt();
  }

  private static List<Integer> ids(JsonNode node) {
    List<Integer> out = new ArrayList<>();
    if (node.isArray()) node.forEach(n -> out.add(n.asInt()));
    else if (node.canConvertToInt()) out.add(node.asInt());
    return out;
  }

  /** All tensors of an HF folder: {@code model.safetensors}, or the shards listed by the index. */
  private static Map<String, Tensor> readHfTensors(Path dir) throws IOException {
    Path index = dir.resolve("model.safetensors.index.json");
    if (!Files.exists(index)) return RawSafetensors.read(dir.resolve("model.safetensors"));
    JsonNode weightMap = JSON.readTree(index.toFile()).path("weight_map");
    Map<String, List<String>> byFile = new TreeMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      byFile.computeIfAbsent(e.getValue().asText(), f -> new ArrayList<>()).add(e.getKey());
    }
    Map<String, Tensor> all = new LinkedHashMap<>();
    for (Map.Entry<String, List<String>> file : byFile.entrySet()) {
      Path shard = dir.resolve(file.getKey());
      if (!Files.exists(shard)) throw new IOException(index + " names " + shard.getFileName() + ", which does not exist");
      Map<String, Tensor> tensors = RawSafetensors.read(shard);
      for (String name : file.getValue()) {
        Tensor t = tensors.remove(name);
        if (t == null) throw new IOException(shard + ": has no tensor " + name + " though the index puts it there");
        all.put(name, t);
      }
      if (!tensors.isEmpty()) throw new IOException(shard + ": tensors the index does not list: " + tensors.keySet());
    }
    return all;
  }

  /** Tensors by name, widened to doubles when taken; shapes checked. */
  private static final class Weights {
    private final Path dir;
    private final Map<String, Tensor> tensors;

    Weights(Path dir, Map<String, Tensor> tensors) {
      this.dir = dir;
      this.tensors = new HashMap<>(tensors);
    }

    double[] take(String name, long... shape) throws IOException {
      Tensor t = tensors.remove(name);
      if (t == null) throw new IOException(dir + ": missing tensor " + name);
      if (!Arrays.equals(t.shape(), shape)) {
        throw new IOException(dir + ": tensor " + name + " has shape " + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(shape));
      }
      double[] out = new double[t.values().length];
      for (int i = 0; i < out.length; i++) out[i] = t.values()[i];
      return out;
    }

    void ignore(String name) {
      tensors.remove(name);
    }

    void checkAllUsed() throws IOException {
      if (!tensors.isEmpty()) throw new IOException(dir + ": tensors the model does not use: " + new TreeMap<>(tensors).keySet());
    }
  }

  // ---------------------------------------------------------------------------------------------- RoPE

  /**
   * RoPE inverse frequencies {@code θ^(−2i/D)}, {@code i < D/2}, scaled as transformers' {@code
   * modeling_rope_utils.py} does for {@code ropeScaling} (a {@code rope_scaling} object; {@code null}, or type
   * {@code default}, for none; {@code linear} and {@code llama3} supported).
   */
  static double[] inverseFrequencies(double theta, int headDim, JsonNode ropeScaling) {
    double[] inv = new double[headDim / 2];
    for (int i = 0; i < inv.length; i++) inv[i] = Math.pow(theta, -(2.0 * i) / headDim);
    if (ropeScaling == null) return inv;
    String type = ropeScaling.hasNonNull("rope_type") ? ropeScaling.get("rope_type").asText() : ropeScaling.path("type").asText("default");
    switch (type) {
      case "default" -> {}
      case "linear" -> {
        double factor = ropeScaling.get("factor").asDouble();
        for (int i = 0; i < inv.length; i++) inv[i] /= factor;
      }
      case "llama3" -> {
        double factor = ropeScaling.get("factor").asDouble();
        double lowFreqFactor = ropeScaling.get("low_freq_factor").asDouble();
        double highFreqFactor = ropeScaling.get("high_freq_factor").asDouble();
        double oldContext = ropeScaling.get("original_max_position_embeddings").asDouble();
        double lowFreqWavelen = oldContext / lowFreqFactor;
        double highFreqWavelen = oldContext / highFreqFactor;
        for (int i = 0; i < inv.length; i++) {
          double wavelen = 2 * Math.PI / inv[i];
          double llama = wavelen > lowFreqWavelen ? inv[i] / factor : inv[i];
          double smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
          boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
          inv[i] = medium ? (1 - smooth) * llama / factor + smooth * llama : llama;
        }
      }
      default -> throw new UnsupportedOperationException("rope_type " + type + " is not supported by the reference");
    }
    return inv;
  }

  /** Rotates every head of {@code x} in place by {@code position}, in this model's layout's RoPE form. */
  private void rope(double[] x, int heads, int position) {
    int d = config.headDim();
    int half = d / 2;
    for (int i = 0; i < half; i++) {
      double angle = position * inverseFrequencies[i];
      double cos = Math.cos(angle);
      double sin = Math.sin(angle);
      for (int h = 0; h < heads; h++) {
        // HF rotate-half: pair (i, i + D/2). Meta: complex pair (2i, 2i + 1).
        int re = config.layout() == Layout.HF ? h * d + i : h * d + 2 * i;
        int im = config.layout() == Layout.HF ? h * d + i + half : h * d + 2 * i + 1;
        double a = x[re];
        double b = x[im];
        x[re] = a * cos - b * sin;
        x[im] = a * sin + b * cos;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------- forward

  /** Logits {@code [T][vocab]} at every position of {@code tokens}, positions {@code 0..T-1}. */
  public double[][] logits(int[] tokens) {
    int[] positions = new int[tokens.length];
    for (int i = 0; i < positions.length; i++) positions[i] = i;
    return logits(tokens, positions);
  }

  /**
   * Logits {@code [T][vocab]} of {@code tokens} at RoPE positions {@code positions} (the mask stays causal in
   * sequence order: token {@code t} attends to tokens {@code 0..t}).
   */
  public double[][] logits(int[] tokens, int[] positions) {
    if (tokens.length == 0 || positions.length != tokens.length) {
      throw new IllegalArgumentException(tokens.length + " tokens, " + positions.length + " positions");
    }
    int n = tokens.length;
    int hidden = config.hiddenSize();
    int heads = config.numHeads();
    int kvHeads = config.numKvHeads();
    int d = config.headDim();
    int group = heads / kvHeads;
    double scale = 1 / Math.sqrt(d);
    double[][] x = new double[n][];
    for (int t = 0; t < n; t++) {
      if (tokens[t] < 0 || tokens[t] >= config.vocabSize()) throw new IllegalArgumentException("token " + tokens[t] + " outside the vocabulary");
      x[t] = Arrays.copyOfRange(embeddings, tokens[t] * hidden, (tokens[t] + 1) * hidden);
    }
    for (Layer layer : layers) {
      double[][] q = new double[n][];
      double[][] k = new double[n][];
      double[][] v = new double[n][];
      for (int t = 0; t < n; t++) {
        double[] normed = rmsNorm(x[t], layer.attentionNorm());
        q[t] = linear(normed, layer.wq(), layer.bq(), heads * d);
        k[t] = linear(normed, layer.wk(), layer.bk(), kvHeads * d);
        v[t] = linear(normed, layer.wv(), layer.bv(), kvHeads * d);
        rope(q[t], heads, positions[t]);
        rope(k[t], kvHeads, positions[t]);
      }
      for (int t = 0; t < n; t++) {
        double[] attention = new double[heads * d];
        for (int h = 0; h < heads; h++) {
          int kvh = h / group;
          double[] scores = new double[t + 1];
          double max = Double.NEGATIVE_INFINITY;
          for (int s = 0; s <= t; s++) {
            double dot = 0;
            for (int e = 0; e < d; e++) dot += q[t][h * d + e] * k[s][kvh * d + e];
            scores[s] = dot * scale;
            max = Math.max(max, scores[s]);
          }
          double sum = 0;
          for (int s = 0; s <= t; s++) sum += scores[s] = Math.exp(scores[s] - max);
          for (int s = 0; s <= t; s++) {
            double p = scores[s] / sum;
            for (int e = 0; e < d; e++) attention[h * d + e] += p * v[s][kvh * d + e];
          }
        }
        add(x[t], linear(attention, layer.wo(), layer.bo(), hidden));
      }
      for (int t = 0; t < n; t++) {
        double[] normed = rmsNorm(x[t], layer.ffnNorm());
        int ffn = config.intermediateSize();
        double[] gate = linear(normed, layer.gate(), layer.bGate(), ffn);
        double[] up = linear(normed, layer.up(), layer.bUp(), ffn);
        for (int e = 0; e < ffn; e++) gate[e] = gate[e] / (1 + Math.exp(-gate[e])) * up[e];
        add(x[t], linear(gate, layer.down(), layer.bDown(), hidden));
      }
    }
    double[][] logits = new double[n][];
    for (int t = 0; t < n; t++) logits[t] = linear(rmsNorm(x[t], finalNorm), head, null, config.vocabSize());
    return logits;
  }

  /** Logits {@code [vocab]} after the last token of {@code tokens}. */
  public double[] lastLogits(int[] tokens) {
    double[][] all = logits(tokens);
    return all[all.length - 1];
  }

  /** {@link #lastLogits} narrowed to floats, for comparing with float32 engine outputs. */
  public float[] lastLogitsAsFloats(int[] tokens) {
    double[] logits = lastLogits(tokens);
    float[] out = new float[logits.length];
    for (int i = 0; i < out.length; i++) out[i] = (float) logits[i];
    return out;
  }

  /**
   * {@code steps} greedily decoded tokens after {@code prompt} (argmax, the lowest id on ties), not stopping at
   * EOS.
   */
  public int[] greedy(int[] prompt, int steps) {
    return greedy(prompt, steps, false);
  }

  /**
   * Up to {@code maxSteps} greedily decoded tokens after {@code prompt}; with {@code stopAtEos} the output ends
   * with the first generated EOS id (which it includes).
   */
  public int[] greedy(int[] prompt, int maxSteps, boolean stopAtEos) {
    int[] sequence = Arrays.copyOf(prompt, prompt.length + maxSteps);
    int length = prompt.length;
    for (int step = 0; step < maxSteps; step++) {
      int next = argmax(lastLogits(Arrays.copyOf(sequence, length)));
      sequence[length++] = next;
      if (stopAtEos && eosTokenIds.contains(next)) break;
    }
    return Arrays.copyOfRange(sequence, prompt.length, length);
  }

  /** The index of the largest value, the lowest one on ties. */
  public static int argmax(double[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  private double[] rmsNorm(double[] x, double[] gain) {
    double sumSquares = 0;
    for (double value : x) sumSquares += value * value;
    double inv = 1 / Math.sqrt(sumSquares / x.length + config.rmsNormEps());
    double[] out = new double[x.length];
    for (int i = 0; i < x.length; i++) out[i] = x[i] * inv * gain[i];
    return out;
  }

  /** {@code w [out, in] · x [in] + b}, torch's Linear layout. */
  private static double[] linear(double[] x, double[] w, double[] bias, int out) {
    int in = x.length;
    double[] y = new double[out];
    for (int o = 0; o < out; o++) {
      double acc = bias == null ? 0 : bias[o];
      int row = o * in;
      for (int i = 0; i < in; i++) acc += w[row + i] * x[i];
      y[o] = acc;
    }
    return y;
  }

  private static void add(double[] x, double[] y) {
    for (int i = 0; i < x.length; i++) x[i] += y[i];
  }

  // ---------------------------------------------------------------------------------------------- accessors

  /** The architecture read from the folder. */
  public Config config() { return config; }
  public Layout layout() { return config.layout(); }
  public int vocabSize() { return config.vocabSize(); }
  /** BOS id: HF {@code generation_config.json} or {@code config.json}; Meta: {@code <s>} in tokenizer.json, else 1. */
  public int bosTokenId() { return bosTokenId; }
  /** EOS ids: HF {@code generation_config.json} (int or list), else {@code config.json}; Meta: {@code </s>}, else 2. */
  public List<Integer> eosTokenIds() { return eosTokenIds; }
  /** The RoPE inverse frequencies in use (after scaling), {@code headDim/2} of them. */
  public double[] inverseFrequencies() { return inverseFrequencies.clone(); }
}
