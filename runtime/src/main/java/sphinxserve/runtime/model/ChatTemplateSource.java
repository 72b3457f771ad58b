package sphinxserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import sphinxserve.runtime.bundle.BundleException;

/**
 * The chat template of a model folder ({@code tokenizer_config.json}): the Jinja source and the token strings
 * templates read ({@code bos_token}, {@code eos_token}, ...).
 *
 * @param jinja the template; null when the folder has none (a base model)
 * @param variables token strings by the names templates use ({@code bos_token} → {@code "<s>"}, ...)
 * @param addBosToken {@code add_bos_token}: whether the tokenizer itself would put BOS first (absent: yes, as LLaMA's)
 */
public record ChatTemplateSource(String jinja, Map<String, String> variables, boolean addBosToken) {

  /** The variables a template may read, as tokenizer_config.json spells them. */
  private static final java.util.List<String> TOKEN_FIELDS = java.util.List.of("bos_token", "eos_token", "unk_token", "pad_token");

  public ChatTemplateSource {
    variables = Map.copyOf(variables);
  }

  public String bosToken() {
    return variables.get("bos_token");
  }

  public String eosToken() {
    return variables.get("eos_token");
  }

  /** Reads {@code node} (tokenizer_config.json from {@code file}, or null when the folder has none). */
  static ChatTemplateSource read(Path file, JsonNode node) {
    // add_bos_token absent: LLaMA's tokenizers (slow and fast) put BOS first, so yes.
    if (node == null) return new ChatTemplateSource(null, Map.of(), true);
    Map<String, String> variables = new TreeMap<>();
    for (String field : TOKEN_FIELDS) {
      JsonNode v = node.get(field);
      if (v == null || v.isNull()) continue;
      // A token is a string, or an AddedToken object {"content": ..., ...}.
      String content = v.isTextual() ? v.asText() : v.path("content").asText(null);
      if (content == null) throw new BundleException(file + ": " + field + " must be a string or an object with content, got " + v);
      variables.put(field, content);
    }
    return new ChatTemplateSource(template(file, node.get("chat_template")), variables, node.path("add_bos_token").asBoolean(true));
  }

  /** {@code chat_template}: a string, or a list of {@code {name, template}} of which "default" is the chat one. */
  private static String template(Path file, JsonNode v) {
    if (v == null || v.isNull()) return null;
    if (v.isTextual()) return v.asText();
    if (v.isArray()) {
      for (JsonNode named : v) {
        if ("default".equals(named.path("name").asText())) return named.path("template").asText();
      }
      throw new BundleException(file + ": chat_template is a list without a template named \"default\"");
    }
    throw new BundleException(file + ": chat_template must be a string or a list of {name, template}, got " + v.getNodeType());
  }
}
