package sphinxserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.bundle.SafeTensors;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.Weights;

/**
 * A LLaMA-family checkpoint folder, opened and checked, ready for the bundle builder: a Hugging Face
 * {@code LlamaForCausalLM} folder ({@code config.json}, safetensors, {@code tokenizer.json},
 * {@code tokenizer_config.json}) or a Meta-layout one ({@code params.json} instead of {@code config.json}; what
 * {@code tools/sphinx_export} writes for SPHINX's LLaMA-2).
 *
 * <p>Opening reads the configs, maps the weight files and checks every tensor the graph needs is there with the
 * shape the config implies, and that nothing else is (a misspelt or unexpected tensor is an error, not silently
 * dropped): a bad folder fails before anything is written. {@link #weights} then hands the tensors to the graph
 * builder in its layout ({@code [in, out]} projections; Meta's interleaved q/k rows permuted to rotate-half
 * order), each read from the mapped file only when the builder asks for it.
 */
public final class LlamaCheckpoint {

  private static final Logger log = LoggerFactory.getLogger(LlamaCheckpoint.class);

  static final String TOKENIZER = "tokenizer.json";
  static final String TOKENIZER_CONFIG = "tokenizer_config.json";

  /** Tensors some checkpoints carry that the graph recomputes (RoPE frequencies). */
  private static final Pattern IGNORED = Pattern.compile("(model\\.layers\\.\\d+\\.self_attn\\.rotary_emb\\.inv_freq|rope\\.freqs)");

  private final Path dir;
  private final LlamaConfig config;
  private final CheckpointTensors tensors;
  private final String tokenizerJson;
  private final JsonNode tokenizer;
  private final ChatTemplateSource template;
  /** Graph weight name → checkpoint tensor name and how to turn it into the graph's layout. */
  private final Map<String, Source> sources;

  /** How a graph weight is made from a checkpoint tensor. */
  private enum Transform { AS_IS, TRANSPOSE, PERMUTE_Q_TRANSPOSE, PERMUTE_K_TRANSPOSE }

  private record Source(String tensor, Transform transform) {}

  private LlamaCheckpoint(Path dir, LlamaConfig config, CheckpointTensors tensors, String tokenizerJson,
      JsonNode tokenizer, ChatTemplateSource template) {
    this.dir = dir;
    this.config = config;
    this.tensors = tensors;
    this.tokenizerJson = tokenizerJson;
    this.tokenizer = tokenizer;
    this.template = template;
    this.sources = sources(config);
    checkTensors();
  }

  /**
   * Opens the checkpoint in {@code dir}.
   *
   * @param maxContext positions to serve; 0 for the model's own maximum (a Meta checkpoint without
   *     {@code max_seq_len} needs one)
   * @throws BundleException naming the file and field or tensor that is wrong
   */
  public static LlamaCheckpoint open(Path dir, int maxContext) {
    if (!Files.isDirectory(dir)) throw new BundleException(dir + ": not a directory (a model folder holds config.json or params.json, safetensors weights and tokenizer.json)");
    String tokenizerJson = readString(dir.resolve(TOKENIZER));
    JsonNode tokenizer = parseTokenizer(dir.resolve(TOKENIZER), tokenizerJson);
    JsonNode tokenizerConfig = JsonFiles.readIfPresent(dir.resolve(TOKENIZER_CONFIG));
    ChatTemplateSource template = ChatTemplateSource.read(dir.resolve(TOKENIZER_CONFIG), tokenizerConfig);
    boolean hf = Files.isRegularFile(dir.resolve(HfConfigReader.CONFIG));
    boolean meta = Files.isRegularFile(dir.resolve(MetaParamsReader.PARAMS));
    if (hf == meta) {
      throw new BundleException(dir + ": " + (hf ? "holds both config.json and params.json; which layout is meant is unclear"
          : "no config.json (Hugging Face) or params.json (Meta layout)"));
    }
    CheckpointTensors tensors = CheckpointTensors.open(dir);
    LlamaConfig config;
    if (hf) {
      config = HfConfigReader.read(dir, maxContext);
    } else {
      int bos = tokenId(dir, tokenizer, template.bosToken(), "bos_token");
      int eos = tokenId(dir, tokenizer, template.eosToken(), "eos_token");
      config = MetaParamsReader.read(dir, tensors.get("tok_embeddings.weight").shape()[0],
          tensors.get("layers.0.feed_forward.w1.weight").shape()[0], maxContext, bos, List.of(eos));
    }
    return new LlamaCheckpoint(dir, config, tensors, tokenizerJson, tokenizer, template);
  }

  public Path directory() {
    return dir;
  }

  public LlamaConfig config() {
    return config;
  }

  public DecoderShape shape() {
    return config.shape();
  }

  /** The folder's {@code tokenizer.json}, as is. */
  public String tokenizerJson() {
    return tokenizerJson;
  }

  /** The parsed tokenizer.json. */
  JsonNode tokenizer() {
    return tokenizer;
  }

  /** The chat template and the token strings it reads, from {@code tokenizer_config.json}. */
  public ChatTemplateSource template() {
    return template;
  }

  /** The model's name: the folder's name. */
  public String name() {
    return dir.toAbsolutePath().normalize().getFileName().toString();
  }

  /**
   * The weights under the graph's names, each loaded (widened to float32, transposed, permuted) when the graph
   * builder asks and not kept; loading logs progress every few seconds.
   */
  public Weights weights() {
    Weights weights = new Weights(0);
    long totalBytes = 0;
    for (Source s : sources.values()) totalBytes += tensors.get(s.tensor()).data().byteSize();
    Progress progress = new Progress(sources.size(), totalBytes);
    for (Map.Entry<String, Source> e : sources.entrySet()) {
      Source s = e.getValue();
      weights.putLazy(e.getKey(), () -> progress.loaded(tensors.get(s.tensor()), load(s)));
    }
    return weights;
  }

  /**
   * SHA-256 over every input file (configs, tokenizer files, weights) by name: identifies what a bundle was
   * built from, so a changed file never meets a stale cached bundle.
   */
  public String contentHash() {
    return contentHash(List.of());
  }

  /** {@link #contentHash()} over {@code extra} files too (an export folder's vision graph and geometry). */
  public String contentHash(List<Path> extra) {
    List<Path> inputs = new ArrayList<>(tensors.files());
    inputs.addAll(extra);
    for (String name : List.of(HfConfigReader.CONFIG, HfConfigReader.GENERATION_CONFIG, MetaParamsReader.PARAMS, TOKENIZER,
        TOKENIZER_CONFIG, "model.safetensors.index.json", "consolidated.safetensors.index.json")) {
      if (Files.isRegularFile(dir.resolve(name))) inputs.add(dir.resolve(name));
    }
    inputs.sort(null);
    MessageDigest all = sha256();
    long start = System.nanoTime();
    long bytes = 0;
    for (Path file : inputs) {
      all.update((file.getFileName() + "=" + fileHash(file) + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
      bytes += sizeOf(file);
    }
    log.info("hashed model inputs files={} mb={} seconds={}", inputs.size(), bytes >> 20, String.format("%.1f", (System.nanoTime() - start) / 1e9));
    return HexFormat.of().formatHex(all.digest());
  }

  // ---- layout ----------------------------------------------------------------------------------------

  /** Where each graph weight comes from, per layout. */
  private static Map<String, Source> sources(LlamaConfig config) {
    Map<String, Source> out = new LinkedHashMap<>();
    DecoderShape s = config.shape();
    boolean hf = config.layout() == CheckpointLayout.HUGGING_FACE;
    out.put("embed_tokens", new Source(hf ? "model.embed_tokens.weight" : "tok_embeddings.weight", Transform.AS_IS));
    for (int l = 0; l < s.numLayers(); l++) {
      String g = "layers." + l + ".";
      if (hf) {
        String a = "model.layers." + l + ".self_attn.";
        String m = "model.layers." + l + ".mlp.";
        out.put(g + "input_norm", new Source("model.layers." + l + ".input_layernorm.weight", Transform.AS_IS));
        for (String p : List.of("q_proj", "k_proj", "v_proj", "o_proj")) {
          out.put(g + p, new Source(a + p + ".weight", Transform.TRANSPOSE));
          if (config.variant().attentionBias()) out.put(g + p + ".bias", new Source(a + p + ".bias", Transform.AS_IS));
        }
        out.put(g + "post_attention_norm", new Source("model.layers." + l + ".post_attention_layernorm.weight", Transform.AS_IS));
        for (String p : List.of("gate_proj", "up_proj", "down_proj")) {
          out.put(g + p, new Source(m + p + ".weight", Transform.TRANSPOSE));
          if (config.variant().mlpBias()) out.put(g + p + ".bias", new Source(m + p + ".bias", Transform.AS_IS));
        }
      } else {
        String a = "layers." + l + ".attention.";
        String m = "layers." + l + ".feed_forward.";
        out.put(g + "input_norm", new Source("layers." + l + ".attention_norm.weight", Transform.AS_IS));
        out.put(g + "q_proj", new Source(a + "wq.weight", Transform.PERMUTE_Q_TRANSPOSE));
        out.put(g + "k_proj", new Source(a + "wk.weight", Transform.PERMUTE_K_TRANSPOSE));
        out.put(g + "v_proj", new Source(a + "wv.weight", Transform.TRANSPOSE));
        out.put(g + "o_proj", new Source(a + "wo.weight", Transform.TRANSPOSE));
        out.put(g + "post_attention_norm", new Source("layers." + l + ".ffn_norm.weight", Transform.AS_IS));
        out.put(g + "gate_proj", new Source(m + "w1.weight", Transform.TRANSPOSE));
        out.put(g + "up_proj", new Source(m + "w3.weight", Transform.TRANSPOSE));
        out.put(g + "down_proj", new Source(m + "w2.weight", Transform.TRANSPOSE));
      }
    }
    out.put("final_norm", new Source(hf ? "model.norm.weight" : "norm.weight", Transform.AS_IS));
    if (!config.variant().tiedEmbeddings()) out.put("lm_head", new Source(hf ? "lm_head.weight" : "output.weight", Transform.TRANSPOSE));
    return out;
  }

  /** The shape each checkpoint tensor must have ({@code [out, in]} for projections, as torch stores them). */
  private long[] expectedShape(String graphName) {
    DecoderShape s = config.shape();
    long h = s.hiddenSize();
    long q = (long) s.numHeads() * s.headDim();
    long kv = (long) s.numKvHeads() * s.headDim();
    long i = s.intermediateSize();
    String leaf = graphName.substring(graphName.lastIndexOf('.') + 1);
    boolean bias = graphName.endsWith(".bias");
    if (bias) leaf = graphName.substring(0, graphName.length() - ".bias".length()).replaceAll(".*\\.", "");
    long[] matrix = switch (leaf) {
      case "embed_tokens", "lm_head" -> new long[] {s.vocabSize(), h};
      case "input_norm", "post_attention_norm", "final_norm" -> new long[] {h};
      case "q_proj" -> new long[] {q, h};
      case "k_proj", "v_proj" -> new long[] {kv, h};
      case "o_proj" -> new long[] {h, q};
      case "gate_proj", "up_proj" -> new long[] {i, h};
      case "down_proj" -> new long[] {h, i};
      default -> throw new IllegalStateException("no shape rule for " + graphName);
    };
    return bias ? new long[] {matrix[0]} : matrix;
  }

  /** Every needed tensor present, float, of the right shape; nothing unexpected besides {@link #IGNORED}. */
  private void checkTensors() {
    String configFile = config.layout() == CheckpointLayout.HUGGING_FACE ? HfConfigReader.CONFIG : MetaParamsReader.PARAMS;
    Set<String> expected = new TreeSet<>();
    for (Map.Entry<String, Source> e : sources.entrySet()) {
      String name = e.getValue().tensor();
      expected.add(name);
      if (!tensors.contains(name)) throw new BundleException(dir + ": tensor " + name + " is missing (" + configFile + " implies it)");
      SafeTensors.Tensor t = tensors.get(name);
      if (!t.isFloat()) throw new BundleException(dir + ": tensor " + name + " is " + t.dtype() + "; weights must be F32, F16 or BF16");
      long[] want = expectedShape(e.getKey());
      if (!java.util.Arrays.equals(want, t.shape())) {
        throw new BundleException(dir + ": tensor " + name + " has shape " + t.shapeText() + " but " + configFile + " implies "
            + java.util.Arrays.toString(want));
      }
    }
    List<String> unexpected = new ArrayList<>();
    for (String name : tensors.names()) {
      if (expected.contains(name) || IGNORED.matcher(name).matches()) continue;
      // A tied model may still store the head; it equals the embeddings and is not read.
      if (config.variant().tiedEmbeddings() && (name.equals("lm_head.weight") || name.equals("output.weight"))) continue;
      unexpected.add(name);
    }
    if (!unexpected.isEmpty()) {
      throw new BundleException(dir + ": tensors the model does not use (another architecture, or a config that disagrees "
          + "with the weights): " + String.join(", ", unexpected.subList(0, Math.min(8, unexpected.size())))
          + (unexpected.size() > 8 ? " and " + (unexpected.size() - 8) + " more" : ""));
    }
  }

  private float[] load(Source s) {
    SafeTensors.Tensor t = tensors.get(s.tensor());
    float[] values = t.floats();
    // Drop the file's pages from this process once read: a mapped checkpoint would otherwise stay resident as a
    // whole until the build ends (they remain in the page cache, free to reclaim).
    if (t.data().isMapped()) t.data().unload();
    int rows = (int) t.shape()[0];
    int cols = t.shape().length > 1 ? (int) t.shape()[1] : 1;
    return switch (s.transform()) {
      case AS_IS -> values;
      case TRANSPOSE -> transpose(values, rows, cols);
      case PERMUTE_Q_TRANSPOSE -> transpose(interleavedToHalves(values, config.shape().numHeads(), config.shape().headDim(), cols), rows, cols);
      case PERMUTE_K_TRANSPOSE -> transpose(interleavedToHalves(values, config.shape().numKvHeads(), config.shape().headDim(), cols), rows, cols);
    };
  }

  /**
   * Meta's q/k rows (per head, pairs {@code (2i, 2i+1)} rotated together) reordered into rotate-half order (per
   * head, {@code (i, i + D/2)} rotated together): row {@code h·D + 2i + j} moves to {@code h·D + j·D/2 + i}. This is
   * the permutation transformers' {@code convert_llama_weights_to_hf.py} applies.
   */
  static float[] interleavedToHalves(float[] w, int heads, int headDim, int cols) {
    float[] out = new float[w.length];
    int half = headDim / 2;
    for (int h = 0; h < heads; h++) {
      for (int i = 0; i < half; i++) {
        for (int j = 0; j < 2; j++) {
          int from = h * headDim + 2 * i + j;
          int to = h * headDim + j * half + i;
          System.arraycopy(w, from * cols, out, to * cols, cols);
        }
      }
    }
    return out;
  }

  /** {@code m [rows, cols]} transposed to {@code [cols, rows]}, tile by tile so both sides stay in cache. */
  static float[] transpose(float[] m, int rows, int cols) {
    float[] t = new float[m.length];
    final int tile = 64;
    for (int r0 = 0; r0 < rows; r0 += tile) {
      for (int c0 = 0; c0 < cols; c0 += tile) {
        int rEnd = Math.min(rows, r0 + tile);
        int cEnd = Math.min(cols, c0 + tile);
        for (int r = r0; r < rEnd; r++) {
          for (int c = c0; c < cEnd; c++) t[c * rows + r] = m[r * cols + c];
        }
      }
    }
    return t;
  }

  // ---- files -----------------------------------------------------------------------------------------

  private static JsonNode parseTokenizer(Path file, String json) {
    try {
      JsonNode node = new com.fasterxml.jackson.databind.ObjectMapper().readTree(json);
      if (node == null || !node.path("model").path("vocab").isObject() && !node.path("model").path("vocab").isArray()) {
        throw new BundleException(file + ": no model.vocab (not a Hugging Face tokenizer.json)");
      }
      return node;
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new BundleException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
    }
  }

  /** The id of token {@code content} in tokenizer.json (added tokens first, then the vocabulary). */
  static int tokenId(Path dir, JsonNode tokenizer, String content, String field) {
    if (content == null) throw new BundleException(dir.resolve(TOKENIZER_CONFIG) + ": " + field + " is missing (a Meta-layout folder names its BOS and EOS there)");
    for (JsonNode added : tokenizer.path("added_tokens")) {
      if (content.equals(added.path("content").asText(null))) return added.path("id").asInt();
    }
    JsonNode vocab = tokenizer.path("model").path("vocab");
    if (vocab.has(content)) return vocab.get(content).asInt();
    throw new BundleException(dir + ": " + field + " '" + content + "' is not a token of tokenizer.json");
  }

  private static String readString(Path file) {
    if (!Files.isRegularFile(file)) throw new BundleException(file + ": missing");
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read (" + e + ")", e);
    }
  }

  private static long sizeOf(Path file) {
    try {
      return Files.size(file);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read (" + e + ")", e);
    }
  }

  private static String fileHash(Path file) {
    MessageDigest digest = sha256();
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20);
      while (channel.read(buffer) >= 0) {
        buffer.flip();
        digest.update(buffer);
        buffer.clear();
      }
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read (" + e + ")", e);
    }
    return HexFormat.of().formatHex(digest.digest());
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Logs loading progress (tensors, MB, MB/s) at most every few seconds, and at the end. */
  private static final class Progress {
    private static final long INTERVAL_NANOS = 5_000_000_000L;
    private final int totalTensors;
    private final long totalBytes;
    private final AtomicInteger tensors = new AtomicInteger();
    private final AtomicLong bytes = new AtomicLong();
    private final long start = System.nanoTime();
    private long lastLog = start;

    Progress(int totalTensors, long totalBytes) {
      this.totalTensors = totalTensors;
      this.totalBytes = totalBytes;
    }

    synchronized float[] loaded(SafeTensors.Tensor tensor, float[] values) {
      int n = tensors.incrementAndGet();
      long b = bytes.addAndGet(tensor.data().byteSize());
      long now = System.nanoTime();
      if (now - lastLog >= INTERVAL_NANOS || n == totalTensors) {
        lastLog = now;
        double seconds = (now - start) / 1e9;
        log.info("loading weights tensors={}/{} mb={}/{} mb_per_s={}", n, totalTensors, b >> 20, totalBytes >> 20,
            String.format("%.0f", (b >> 20) / Math.max(seconds, 1e-3)));
      }
      return values;
    }
  }
}
