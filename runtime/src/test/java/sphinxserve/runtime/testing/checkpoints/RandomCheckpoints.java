package sphinxserve.runtime.testing.checkpoints;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.SplittableRandom;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Dtype;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Tensor;
import sphinxserve.runtime.tokenizer.BundleTokenizers;

/**
 * Random LLaMA checkpoints at small shapes, written either as a Hugging Face {@code LlamaForCausalLM} folder
 * ({@link #writeHf}) or as the same model in Meta's layout ({@link #writeMeta}). Everything is deterministic in
 * the options: the same options write byte-identical files.
 *
 * <pre>{@code
 * RandomCheckpoints model = RandomCheckpoints.builder().numKvHeads(2).dtype(Dtype.BF16).seed(3).build();
 * model.writeHf(dir);
 * ReferenceLlama reference = ReferenceLlama.load(dir);
 * }</pre>
 *
 * <p>Weights are drawn per tensor from a generator seeded by {@code (seed, tensor name)}, in float32, then
 * rounded to {@link #dtype()} (round to nearest even); {@link #tensors()} holds the rounded values, the ones the
 * files store. Scales keep activations O(1) and the next-token distribution far from flat: embeddings N(0, 1),
 * projections N(0, 1/in), biases N(0, 0.1²), norm gains uniform in [0.9, 1.1], an untied {@code lm_head}
 * N(0, 16/hidden).
 *
 * <p>Meta layout: {@code params.json} and {@code consolidated.safetensors}; {@code wq}/{@code wk} rows are in
 * Meta's interleaved RoPE order, i.e. the inverse of the permutation transformers' {@code
 * convert_llama_weights_to_hf.py} applies. Meta's FFN size comes from {@code dim}, {@code multiple_of} and {@code
 * ffn_dim_multiplier}; {@link #metaFfnParameters} picks values that reproduce {@link #intermediateSize()} (always
 * possible, so {@code params.json} never needs an explicit {@code intermediate_size}).
 */
public final class RandomCheckpoints {

  /** RoPE scaling of {@code config.json}: {@code null} for none, {@link Linear} or {@link Llama3}. */
  public sealed interface RopeScaling {}

  /** {@code {"rope_type": "linear", "factor": f}}: every inverse frequency divided by {@code factor}. */
  public record Linear(double factor) implements RopeScaling {}

  /** {@code {"rope_type": "llama3", ...}} of Llama 3.1. */
  public record Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings)
      implements RopeScaling {}

  /** The special tokens of the default tokenizer: ids 0, 1, 2. */
  public static final List<String> DEFAULT_SPECIAL_TOKENS = List.of("<unk>", "<s>", "</s>");

  /** Special tokens for {@link #LLAMA3_CHAT_TEMPLATE}: {@code <|eot_id|>} is id 5. */
  public static final List<String> LLAMA3_SPECIAL_TOKENS =
      List.of("<unk>", "<s>", "</s>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>");

  /** A Llama-3-style chat template over {@link #LLAMA3_SPECIAL_TOKENS} (BOS is {@code <s>} here). */
  public static final String LLAMA3_CHAT_TEMPLATE =
      "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
          + "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
          + "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private final int vocabSize;
  private final int hiddenSize;
  private final int numLayers;
  private final int numHeads;
  private final int numKvHeads;
  private final int headDim;
  private final boolean explicitHeadDim;
  private final int intermediateSize;
  private final int maxPositionEmbeddings;
  private final double ropeTheta;
  private final double rmsNormEps;
  private final RopeScaling ropeScaling;
  private final boolean tieWordEmbeddings;
  private final boolean attentionBias;
  private final boolean mlpBias;
  private final Dtype dtype;
  private final int shards;
  private final long seed;
  private final String chatTemplate;
  private final List<String> specialTokens;
  private final List<Integer> eosTokenIds;
  private final boolean eosAsList;
  private Map<String, Tensor> tensors;

  private RandomCheckpoints(Builder b) {
    vocabSize = b.vocabSize;
    hiddenSize = b.hiddenSize;
    numLayers = b.numLayers;
    numHeads = b.numHeads;
    numKvHeads = b.numKvHeads;
    explicitHeadDim = b.headDim != null;
    headDim = explicitHeadDim ? b.headDim : b.hiddenSize / b.numHeads;
    intermediateSize = b.intermediateSize;
    maxPositionEmbeddings = b.maxPositionEmbeddings;
    ropeTheta = b.ropeTheta;
    rmsNormEps = b.rmsNormEps;
    ropeScaling = b.ropeScaling;
    tieWordEmbeddings = b.tieWordEmbeddings;
    attentionBias = b.attentionBias;
    mlpBias = b.mlpBias;
    dtype = b.dtype;
    shards = b.shards;
    seed = b.seed;
    chatTemplate = b.chatTemplate;
    specialTokens = List.copyOf(b.specialTokens);
    eosTokenIds = b.eosTokenIds == null ? List.of(specialTokens.indexOf("</s>")) : List.copyOf(b.eosTokenIds);
    eosAsList = b.eosTokenIds != null && b.eosAsList;
    check(numHeads > 0 && numKvHeads > 0 && numHeads % numKvHeads == 0, "numHeads " + numHeads + " must be a multiple of numKvHeads " + numKvHeads);
    check(explicitHeadDim || hiddenSize % numHeads == 0, "hiddenSize " + hiddenSize + " is not a multiple of numHeads " + numHeads + "; give headDim");
    check(headDim > 0 && headDim % 2 == 0, "headDim " + headDim + " must be even");
    check(hiddenSize > 0 && numLayers > 0 && intermediateSize > 0, "sizes must be positive");
    check(shards >= 1, "shards must be at least 1");
    check(specialTokens.contains("<s>") && specialTokens.contains("</s>"), "special tokens need <s> and </s>: " + specialTokens);
    for (int id : eosTokenIds) check(id >= 0 && id < vocabSize, "eos id " + id + " outside the vocabulary");
  }

  private static void check(boolean ok, String message) {
    if (!ok) throw new IllegalArgumentException(message);
  }

  /** A builder with small defaults: vocab 384, hidden 64, 2 layers, 4 heads, 2 KV heads, FFN 160, F32, 1 shard. */
  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding these options, to derive a variant. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.vocabSize = vocabSize;
    b.hiddenSize = hiddenSize;
    b.numLayers = numLayers;
    b.numHeads = numHeads;
    b.numKvHeads = numKvHeads;
    b.headDim = explicitHeadDim ? headDim : null;
    b.intermediateSize = intermediateSize;
    b.maxPositionEmbeddings = maxPositionEmbeddings;
    b.ropeTheta = ropeTheta;
    b.rmsNormEps = rmsNormEps;
    b.ropeScaling = ropeScaling;
    b.tieWordEmbeddings = tieWordEmbeddings;
    b.attentionBias = attentionBias;
    b.mlpBias = mlpBias;
    b.dtype = dtype;
    b.shards = shards;
    b.seed = seed;
    b.chatTemplate = chatTemplate;
    b.specialTokens = specialTokens;
    b.eosTokenIds = eosAsList || eosTokenIds.size() > 1 || eosTokenIds.getFirst() != specialTokens.indexOf("</s>") ? eosTokenIds : null;
    b.eosAsList = eosAsList;
    return b;
  }

  /** Options of {@link RandomCheckpoints}; every setter returns this builder. */
  public static final class Builder {
    private int vocabSize = 384;
    private int hiddenSize = 64;
    private int numLayers = 2;
    private int numHeads = 4;
    private int numKvHeads = 2;
    private Integer headDim;
    private int intermediateSize = 160;
    private int maxPositionEmbeddings = 256;
    private double ropeTheta = 10_000;
    private double rmsNormEps = 1e-5;
    private RopeScaling ropeScaling;
    private boolean tieWordEmbeddings;
    private boolean attentionBias;
    private boolean mlpBias;
    private Dtype dtype = Dtype.F32;
    private int shards = 1;
    private long seed = 1;
    private String chatTemplate;
    private List<String> specialTokens = DEFAULT_SPECIAL_TOKENS;
    private List<Integer> eosTokenIds;
    private boolean eosAsList;

    private Builder() {}

    /** Total vocabulary, special tokens included; at least specials + 256 (the tokenizer's byte tokens). */
    public Builder vocabSize(int v) { vocabSize = v; return this; }
    public Builder hiddenSize(int v) { hiddenSize = v; return this; }
    public Builder numLayers(int v) { numLayers = v; return this; }
    public Builder numHeads(int v) { numHeads = v; return this; }
    /** Key/value heads (GQA when fewer than {@link #numHeads}); must divide it. */
    public Builder numKvHeads(int v) { numKvHeads = v; return this; }
    /** An explicit {@code head_dim}, possibly different from hidden/heads; {@code null} for hidden/heads. */
    public Builder headDim(Integer v) { headDim = v; return this; }
    public Builder intermediateSize(int v) { intermediateSize = v; return this; }
    public Builder maxPositionEmbeddings(int v) { maxPositionEmbeddings = v; return this; }
    public Builder ropeTheta(double v) { ropeTheta = v; return this; }
    public Builder rmsNormEps(double v) { rmsNormEps = v; return this; }
    /** {@code null}, {@link Linear} or {@link Llama3}. */
    public Builder ropeScaling(RopeScaling v) { ropeScaling = v; return this; }
    public Builder tieWordEmbeddings(boolean v) { tieWordEmbeddings = v; return this; }
    public Builder attentionBias(boolean v) { attentionBias = v; return this; }
    public Builder mlpBias(boolean v) { mlpBias = v; return this; }
    public Builder dtype(Dtype v) { dtype = Objects.requireNonNull(v); return this; }
    /** 1: {@code model.safetensors}; n &gt; 1: {@code model-0000i-of-0000n.safetensors} plus the index. */
    public Builder shards(int v) { shards = v; return this; }
    public Builder seed(long v) { seed = v; return this; }
    /** A Jinja chat template for {@code tokenizer_config.json}, or {@code null} for none. */
    public Builder chatTemplate(String v) { chatTemplate = v; return this; }
    /** Special tokens, ids 0..k-1 in order; must contain {@code <s>} and {@code </s>}. */
    public Builder specialTokens(List<String> v) { specialTokens = List.copyOf(v); return this; }
    /** One EOS id, written as an int (default: the id of {@code </s>}). */
    public Builder eosTokenId(int id) { eosTokenIds = List.of(id); eosAsList = false; return this; }
    /** EOS ids, written as a JSON list. */
    public Builder eosTokenIds(List<Integer> ids) { eosTokenIds = List.copyOf(ids); eosAsList = true; return this; }
    /** {@link #LLAMA3_SPECIAL_TOKENS}, {@link #LLAMA3_CHAT_TEMPLATE}, EOS ids [2, 5]. */
    public Builder llama3Chat() {
      return specialTokens(LLAMA3_SPECIAL_TOKENS).chatTemplate(LLAMA3_CHAT_TEMPLATE).eosTokenIds(List.of(2, 5));
    }

    public RandomCheckpoints build() {
      return new RandomCheckpoints(this);
    }
  }

  public int vocabSize() { return vocabSize; }
  public int hiddenSize() { return hiddenSize; }
  public int numLayers() { return numLayers; }
  public int numHeads() { return numHeads; }
  public int numKvHeads() { return numKvHeads; }
  public int headDim() { return headDim; }
  public int intermediateSize() { return intermediateSize; }
  public int maxPositionEmbeddings() { return maxPositionEmbeddings; }
  public double ropeTheta() { return ropeTheta; }
  public double rmsNormEps() { return rmsNormEps; }
  public RopeScaling ropeScaling() { return ropeScaling; }
  public boolean tieWordEmbeddings() { return tieWordEmbeddings; }
  public boolean attentionBias() { return attentionBias; }
  public boolean mlpBias() { return mlpBias; }
  public Dtype dtype() { return dtype; }
  public int shards() { return shards; }
  public long seed() { return seed; }
  public String chatTemplate() { return chatTemplate; }
  public List<String> specialTokens() { return specialTokens; }
  public List<Integer> eosTokenIds() { return eosTokenIds; }
  public int bosTokenId() { return specialTokens.indexOf("<s>"); }

  // ---------------------------------------------------------------------------------------------- tensors

  /**
   * The Hugging Face tensors, in a fixed order (embeddings, layers, final norm, head), with the values the files
   * store (rounded to {@link #dtype()}).
   */
  public synchronized Map<String, Tensor> tensors() {
    if (tensors == null) tensors = Collections.unmodifiableMap(generate(true));
    return tensors;
  }

  /** {@link #tensors()} before rounding to {@link #dtype()}: the float32 draws. */
  public Map<String, Tensor> unroundedTensors() {
    return generate(false);
  }

  private Map<String, Tensor> generate(boolean rounded) {
    Map<String, Tensor> out = new LinkedHashMap<>();
    int h = hiddenSize;
    int q = numHeads * headDim;
    int kv = numKvHeads * headDim;
    int ffn = intermediateSize;
    normal(out, rounded, "model.embed_tokens.weight", 1.0, vocabSize, h);
    for (int l = 0; l < numLayers; l++) {
      String p = "model.layers." + l + ".";
      gain(out, rounded, p + "input_layernorm.weight", h);
      linear(out, rounded, p + "self_attn.q_proj", q, h, attentionBias);
      linear(out, rounded, p + "self_attn.k_proj", kv, h, attentionBias);
      linear(out, rounded, p + "self_attn.v_proj", kv, h, attentionBias);
      linear(out, rounded, p + "self_attn.o_proj", h, q, attentionBias);
      gain(out, rounded, p + "post_attention_layernorm.weight", h);
      linear(out, rounded, p + "mlp.gate_proj", ffn, h, mlpBias);
      linear(out, rounded, p + "mlp.up_proj", ffn, h, mlpBias);
      linear(out, rounded, p + "mlp.down_proj", h, ffn, mlpBias);
    }
    gain(out, rounded, "model.norm.weight", h);
    if (!tieWordEmbeddings) normal(out, rounded, "lm_head.weight", 4 / Math.sqrt(h), vocabSize, h);
    return out;
  }

  private SplittableRandom random(String name) {
    return new SplittableRandom(seed * 0x9E3779B97F4A7C15L + name.hashCode());
  }

  private void normal(Map<String, Tensor> out, boolean rounded, String name, double std, long... shape) {
    SplittableRandom random = random(name);
    float[] values = new float[Math.toIntExact(count(shape))];
    for (int i = 0; i < values.length; i++) values[i] = store(rounded, (float) (random.nextGaussian() * std));
    out.put(name, new Tensor(dtype, shape, values));
  }

  private void gain(Map<String, Tensor> out, boolean rounded, String name, int size) {
    SplittableRandom random = random(name);
    float[] values = new float[size];
    for (int i = 0; i < size; i++) values[i] = store(rounded, (float) (0.9 + 0.2 * random.nextDouble()));
    out.put(name, new Tensor(dtype, new long[] {size}, values));
  }

  private void linear(Map<String, Tensor> out, boolean rounded, String prefix, int outFeatures, int inFeatures, boolean bias) {
    normal(out, rounded, prefix + ".weight", 1 / Math.sqrt(inFeatures), outFeatures, inFeatures);
    if (bias) normal(out, rounded, prefix + ".bias", 0.1, outFeatures);
  }

  private float store(boolean rounded, float value) {
    return rounded ? dtype.round(value) : value;
  }

  private static long count(long[] shape) {
    long n = 1;
    for (long d : shape) n *= d;
    return n;
  }

  // ---------------------------------------------------------------------------------------------- HF layout

  /** The shard file names {@link #writeHf} writes, in order. */
  public List<String> shardFileNames() {
    if (shards == 1) return List.of("model.safetensors");
    List<String> names = new ArrayList<>();
    for (int i = 1; i <= shards; i++) names.add(String.format("model-%05d-of-%05d.safetensors", i, shards));
    return names;
  }

  /**
   * Writes a Hugging Face {@code LlamaForCausalLM} folder into {@code dir} (created if missing): {@code
   * config.json}, {@code generation_config.json}, {@code tokenizer.json}, {@code tokenizer_config.json} and the
   * weights ({@code model.safetensors}, or {@link #shards()} shards and {@code model.safetensors.index.json}).
   * Tensors are split into contiguous runs of about equal byte size; every shard gets at least one tensor.
   *
   * @return {@code dir}
   */
  public Path writeHf(Path dir) throws IOException {
    Files.createDirectories(dir);
    writeJson(dir.resolve("config.json"), hfConfig());
    ObjectNode generation = JSON.createObjectNode();
    generation.put("_from_model_config", true);
    generation.put("bos_token_id", bosTokenId());
    putEos(generation);
    writeJson(dir.resolve("generation_config.json"), generation);
    writeTokenizer(dir);
    writeTokenizerConfig(dir);

    Map<String, Tensor> all = tensors();
    List<String> files = shardFileNames();
    if (shards == 1) {
      RawSafetensors.write(dir.resolve(files.getFirst()), all);
      return dir;
    }
    check(all.size() >= shards, shards + " shards for " + all.size() + " tensors");
    long totalBytes = 0;
    for (Tensor t : all.values()) totalBytes += t.byteSize();
    List<Map<String, Tensor>> parts = new ArrayList<>();
    for (int i = 0; i < shards; i++) parts.add(new LinkedHashMap<>());
    long written = 0;
    int remaining = all.size();
    int shard = 0;
    for (Map.Entry<String, Tensor> e : all.entrySet()) {
      // Move on once this shard holds its share, keeping one tensor for each later shard.
      boolean shareFull = !parts.get(shard).isEmpty() && written >= totalBytes * (shard + 1) / shards;
      boolean laterShardsNeedIt = !parts.get(shard).isEmpty() && remaining <= shards - shard - 1;
      if (shard < shards - 1 && (shareFull || laterShardsNeedIt)) shard++;
      parts.get(shard).put(e.getKey(), e.getValue());
      written += e.getValue().byteSize();
      remaining--;
    }
    ObjectNode index = JSON.createObjectNode();
    index.putObject("metadata").put("total_size", totalBytes);
    ObjectNode weightMap = index.putObject("weight_map");
    for (int i = 0; i < shards; i++) {
      RawSafetensors.write(dir.resolve(files.get(i)), parts.get(i));
      for (String name : parts.get(i).keySet()) weightMap.put(name, files.get(i));
    }
    writeJson(dir.resolve("model.safetensors.index.json"), index);
    return dir;
  }

  /** {@code tokenizer_config.json}: BOS/EOS strings and the chat template (both layouts carry one). */
  private void writeTokenizerConfig(Path dir) throws IOException {
    ObjectNode tokenizerConfig = JSON.createObjectNode();
    tokenizerConfig.put("add_bos_token", true);
    tokenizerConfig.put("add_eos_token", false);
    tokenizerConfig.put("bos_token", "<s>");
    tokenizerConfig.put("eos_token", "</s>");
    tokenizerConfig.put("unk_token", specialTokens.contains("<unk>") ? "<unk>" : null);
    if (chatTemplate == null) tokenizerConfig.putNull("chat_template"); else tokenizerConfig.put("chat_template", chatTemplate);
    tokenizerConfig.put("model_max_length", maxPositionEmbeddings);
    tokenizerConfig.put("tokenizer_class", "PreTrainedTokenizerFast");
    writeJson(dir.resolve("tokenizer_config.json"), tokenizerConfig);
  }

  /** The {@code config.json} transformers writes for these options. */
  public ObjectNode hfConfig() {
    ObjectNode c = JSON.createObjectNode();
    c.putArray("architectures").add("LlamaForCausalLM");
    c.put("attention_bias", attentionBias);
    c.put("attention_dropout", 0.0);
    c.put("bos_token_id", bosTokenId());
    putEos(c);
    c.put("head_dim", headDim);
    c.put("hidden_act", "silu");
    c.put("hidden_size", hiddenSize);
    c.put("initializer_range", 0.02);
    c.put("intermediate_size", intermediateSize);
    c.put("max_position_embeddings", maxPositionEmbeddings);
    c.put("mlp_bias", mlpBias);
    c.put("model_type", "llama");
    c.put("num_attention_heads", numHeads);
    c.put("num_hidden_layers", numLayers);
    c.put("num_key_value_heads", numKvHeads);
    c.put("pretraining_tp", 1);
    c.put("rms_norm_eps", rmsNormEps);
    switch (ropeScaling) {
      case null -> c.putNull("rope_scaling");
      case Linear linear -> c.putObject("rope_scaling").put("factor", linear.factor()).put("rope_type", "linear");
      case Llama3 l3 -> c.putObject("rope_scaling")
          .put("factor", l3.factor())
          .put("high_freq_factor", l3.highFreqFactor())
          .put("low_freq_factor", l3.lowFreqFactor())
          .put("original_max_position_embeddings", l3.originalMaxPositionEmbeddings())
          .put("rope_type", "llama3");
    }
    c.put("rope_theta", ropeTheta);
    c.put("tie_word_embeddings", tieWordEmbeddings);
    c.put("torch_dtype", dtype.torchName());
    c.put("transformers_version", "4.46.0");
    c.put("use_cache", true);
    c.put("vocab_size", vocabSize);
    return c;
  }

  private void putEos(ObjectNode node) {
    if (eosAsList) {
      ArrayNode list = node.putArray("eos_token_id");
      eosTokenIds.forEach(list::add);
    } else {
      node.put("eos_token_id", eosTokenIds.getFirst());
    }
  }

  private void writeTokenizer(Path dir) throws IOException {
    Files.writeString(dir.resolve("tokenizer.json"), BundleTokenizers.build(vocabSize, specialTokens, seed), StandardCharsets.UTF_8);
  }

  private static void writeJson(Path file, ObjectNode node) throws IOException {
    Files.writeString(file, JSON.writeValueAsString(node) + "\n", StandardCharsets.UTF_8);
  }

  // ---------------------------------------------------------------------------------------------- Meta layout

  /** Meta's {@code multiple_of} and {@code ffn_dim_multiplier} ({@code null}: absent) giving {@link #intermediateSize()}. */
  public record MetaFfn(int multipleOf, Double ffnDimMultiplier) {
    /** Meta's {@code FeedForward} hidden size for model width {@code dim}. */
    public int hiddenDim(int dim) {
      int hidden = (int) (2 * (4L * dim) / 3);
      if (ffnDimMultiplier != null) hidden = (int) (ffnDimMultiplier * hidden);
      return multipleOf * ((hidden + multipleOf - 1) / multipleOf);
    }
  }

  /**
   * Meta FFN parameters reproducing {@link #intermediateSize()}: the largest power-of-two {@code multiple_of}
   * (up to 256) that works without a multiplier, else {@code multiple_of = intermediateSize} with a multiplier
   * of at most 1 that brings {@code int(8·dim/3)} under it.
   */
  public MetaFfn metaFfnParameters() {
    for (int m = 256; m >= 1; m /= 2) {
      MetaFfn candidate = new MetaFfn(m, null);
      if (candidate.hiddenDim(hiddenSize) == intermediateSize) return candidate;
    }
    int base = (int) (2 * (4L * hiddenSize) / 3);
    MetaFfn candidate = new MetaFfn(intermediateSize, base <= intermediateSize ? null : (double) intermediateSize / base);
    if (candidate.hiddenDim(hiddenSize) != intermediateSize) throw new AssertionError("no Meta FFN parameters for " + intermediateSize);
    return candidate;
  }

  /**
   * Writes the same model in Meta's layout into {@code dir}: {@code params.json}, {@code
   * consolidated.safetensors} (in {@link #dtype()}, Meta names, {@code wq}/{@code wk} rows in interleaved RoPE
   * order, {@code output.weight} always present, a copy of the embeddings when tied) and {@code tokenizer.json}.
   *
   * @throws IllegalStateException for options Meta's layout cannot express: biases, RoPE scaling, or a {@code
   *     head_dim} other than hidden/heads
   */
  public Path writeMeta(Path dir) throws IOException {
    if (attentionBias || mlpBias) throw new IllegalStateException("Meta layout has no biases");
    if (ropeScaling != null) throw new IllegalStateException("Meta layout written here has no RoPE scaling");
    if (headDim * numHeads != hiddenSize) throw new IllegalStateException("Meta layout needs head_dim = dim / n_heads, not " + headDim);
    Files.createDirectories(dir);
    MetaFfn ffn = metaFfnParameters();
    ObjectNode params = JSON.createObjectNode();
    params.put("dim", hiddenSize);
    params.put("n_layers", numLayers);
    params.put("n_heads", numHeads);
    params.put("n_kv_heads", numKvHeads);
    params.put("vocab_size", vocabSize);
    params.put("multiple_of", ffn.multipleOf());
    if (ffn.ffnDimMultiplier() == null) params.putNull("ffn_dim_multiplier"); else params.put("ffn_dim_multiplier", ffn.ffnDimMultiplier());
    params.put("norm_eps", rmsNormEps);
    params.put("rope_theta", ropeTheta);
    params.put("max_seq_len", maxPositionEmbeddings);
    writeJson(dir.resolve("params.json"), params);
    writeTokenizer(dir);
    writeTokenizerConfig(dir);

    Map<String, Tensor> hf = tensors();
    Map<String, Tensor> meta = new LinkedHashMap<>();
    meta.put("tok_embeddings.weight", hf.get("model.embed_tokens.weight"));
    for (int l = 0; l < numLayers; l++) {
      String p = "model.layers." + l + ".";
      String m = "layers." + l + ".";
      meta.put(m + "attention.wq.weight", toInterleaved(hf.get(p + "self_attn.q_proj.weight"), numHeads));
      meta.put(m + "attention.wk.weight", toInterleaved(hf.get(p + "self_attn.k_proj.weight"), numKvHeads));
      meta.put(m + "attention.wv.weight", hf.get(p + "self_attn.v_proj.weight"));
      meta.put(m + "attention.wo.weight", hf.get(p + "self_attn.o_proj.weight"));
      meta.put(m + "feed_forward.w1.weight", hf.get(p + "mlp.gate_proj.weight"));
      meta.put(m + "feed_forward.w2.weight", hf.get(p + "mlp.down_proj.weight"));
      meta.put(m + "feed_forward.w3.weight", hf.get(p + "mlp.up_proj.weight"));
      meta.put(m + "attention_norm.weight", hf.get(p + "input_layernorm.weight"));
      meta.put(m + "ffn_norm.weight", hf.get(p + "post_attention_layernorm.weight"));
    }
    meta.put("norm.weight", hf.get("model.norm.weight"));
    meta.put("output.weight", hf.get(tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"));
    RawSafetensors.write(dir.resolve("consolidated.safetensors"), meta);
    return dir;
  }

  /**
   * The inverse of transformers' {@code permute(w, n_heads)}: HF row {@code h·D + j·D/2 + i} becomes Meta row
   * {@code h·D + 2i + j}.
   */
  static Tensor toInterleaved(Tensor hf, int heads) {
    int rows = Math.toIntExact(hf.shape()[0]);
    int cols = Math.toIntExact(hf.shape()[1]);
    int d = rows / heads;
    float[] out = new float[hf.values().length];
    for (int h = 0; h < heads; h++) {
      for (int i = 0; i < d / 2; i++) {
        for (int j = 0; j < 2; j++) {
          System.arraycopy(hf.values(), (h * d + j * (d / 2) + i) * cols, out, (h * d + 2 * i + j) * cols, cols);
        }
      }
    }
    return new Tensor(hf.dtype(), hf.shape(), out);
  }
}
