package sphinxserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.DecoderVariant;
import sphinxserve.runtime.graph.RopeScaling;

/**
 * Reads a Hugging Face {@code LlamaForCausalLM} folder's {@code config.json} (and {@code generation_config.json},
 * whose EOS ids win). A field that is absent takes transformers' own {@code LlamaConfig} default; a value this
 * node cannot compute (another architecture, activation or rope scaling type) is refused naming the field, never
 * approximated.
 */
final class HfConfigReader {

  static final String CONFIG = "config.json";
  static final String GENERATION_CONFIG = "generation_config.json";

  /** Architectures computed exactly by the LLaMA graph. */
  private static final Set<String> ARCHITECTURES = Set.of("LlamaForCausalLM");

  private HfConfigReader() {}

  /** The config of {@code dir}; {@code maxContext} > 0 serves fewer positions than the model's maximum. */
  static LlamaConfig read(Path dir, int maxContext) {
    Path file = dir.resolve(CONFIG);
    JsonFiles.Fields f = new JsonFiles.Fields(file, JsonFiles.read(file));
    JsonNode architectures = f.node().path("architectures");
    if (!architectures.isArray() || architectures.size() != 1 || !ARCHITECTURES.contains(architectures.get(0).asText())) {
      throw f.error("architectures", "is " + architectures + "; this node serves " + ARCHITECTURES);
    }
    String modelType = f.optionalString("model_type", "llama");
    if (!modelType.equals("llama")) throw f.error("model_type", "is '" + modelType + "', not 'llama'");
    String activation = f.optionalString("hidden_act", "silu");
    if (!activation.equals("silu")) throw f.error("hidden_act", "is '" + activation + "'; LLaMA's MLP is SwiGLU ('silu')");
    if (f.optionalInt("pretraining_tp", 1) < 1) throw f.error("pretraining_tp", "must be >= 1");

    int hidden = f.requiredInt("hidden_size");
    int heads = f.requiredInt("num_attention_heads");
    int kvHeads = f.optionalInt("num_key_value_heads", heads);
    int headDim = f.optionalInt("head_dim", heads > 0 ? hidden / heads : 0);
    int layers = f.requiredInt("num_hidden_layers");
    int intermediate = f.requiredInt("intermediate_size");
    int vocab = f.requiredInt("vocab_size");
    int modelContext = f.optionalInt("max_position_embeddings", 2048);
    double theta = f.optionalDouble("rope_theta", 10000.0);
    double eps = f.optionalDouble("rms_norm_eps", 1e-6);
    for (String positive : List.of("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size")) {
      if (f.requiredInt(positive) <= 0) throw f.error(positive, "must be positive");
    }
    if (kvHeads <= 0 || heads % kvHeads != 0) throw f.error("num_key_value_heads", "(" + kvHeads + ") must divide num_attention_heads (" + heads + ")");
    if (headDim <= 0 || headDim % 2 != 0) throw f.error("head_dim", "(" + headDim + ") must be positive and even");
    if (modelContext <= 0) throw f.error("max_position_embeddings", "must be positive");
    if (!(theta > 0)) throw f.error("rope_theta", "must be positive");
    if (!(eps > 0)) throw f.error("rms_norm_eps", "must be positive");
    if (maxContext > modelContext) {
      throw new BundleException("--max-context " + maxContext + " exceeds the model's max_position_embeddings " + modelContext);
    }
    int context = maxContext > 0 ? maxContext : modelContext;

    DecoderVariant variant = new DecoderVariant(ropeScaling(f), f.optionalBoolean("tie_word_embeddings", false),
        f.optionalBoolean("attention_bias", false), f.optionalBoolean("mlp_bias", false));
    DecoderShape shape = new DecoderShape(vocab, hidden, layers, heads, kvHeads, headDim, intermediate, context, theta, (float) eps);

    int bos = f.optionalInt("bos_token_id", 1);
    List<Integer> eos = ids(f, "eos_token_id", List.of(2));
    Path generationFile = dir.resolve(GENERATION_CONFIG);
    JsonNode generation = JsonFiles.readIfPresent(generationFile);
    if (generation != null) {
      JsonFiles.Fields g = new JsonFiles.Fields(generationFile, generation);
      bos = g.optionalInt("bos_token_id", bos);
      eos = ids(g, "eos_token_id", eos);
    }
    int pad = f.has("pad_token_id") ? f.optionalInt("pad_token_id", 0) : eos.get(0);
    for (int id : concat(List.of(bos, pad), eos)) {
      if (id < 0 || id >= vocab) throw f.error("bos/eos/pad_token_id", id + " lies outside the vocabulary of " + vocab);
    }
    return new LlamaConfig(CheckpointLayout.HUGGING_FACE, shape, variant, bos, eos, pad);
  }

  /** {@code rope_scaling}: null, {@code default}, {@code linear} or {@code llama3}; anything else is refused. */
  private static RopeScaling ropeScaling(JsonFiles.Fields f) {
    if (!f.has("rope_scaling")) return RopeScaling.NONE;
    JsonNode node = f.node().get("rope_scaling");
    if (!node.isObject()) throw f.error("rope_scaling", "must be an object or null");
    JsonFiles.Fields r = new JsonFiles.Fields(f.file(), node);
    // transformers renamed "type" to "rope_type"; both spellings are in published configs.
    String type = r.optionalString("rope_type", r.optionalString("type", ""));
    try {
      return switch (type) {
        case "default" -> RopeScaling.NONE;
        case "linear" -> new RopeScaling.Linear(r.requiredDouble("factor"));
        case "llama3" -> new RopeScaling.Llama3(r.requiredDouble("factor"), r.requiredDouble("low_freq_factor"),
            r.requiredDouble("high_freq_factor"), r.requiredInt("original_max_position_embeddings"));
        default -> throw f.error("rope_scaling.rope_type", "'" + type + "' is not supported (supported: default, linear, llama3)");
      };
    } catch (IllegalArgumentException e) {
      throw f.error("rope_scaling", e.getMessage());
    }
  }

  /** An id field that may be one integer or a list of them. */
  private static List<Integer> ids(JsonFiles.Fields f, String field, List<Integer> fallback) {
    if (!f.has(field)) return fallback;
    JsonNode v = f.node().get(field);
    List<Integer> out = new ArrayList<>();
    if (v.isArray()) {
      for (JsonNode id : v) {
        if (!id.canConvertToExactIntegral()) throw f.error(field, "must hold integers, got " + v);
        out.add(id.asInt());
      }
    } else if (v.canConvertToExactIntegral()) {
      out.add(v.asInt());
    } else {
      throw f.error(field, "must be an integer or a list of integers, got " + v);
    }
    if (out.isEmpty()) throw f.error(field, "is an empty list");
    return out;
  }

  private static List<Integer> concat(List<Integer> a, List<Integer> b) {
    List<Integer> out = new ArrayList<>(a);
    out.addAll(b);
    return out;
  }
}
