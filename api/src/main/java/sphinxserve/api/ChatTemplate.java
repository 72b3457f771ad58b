package sphinxserve.api;

import java.util.Map;

/**
 * The conversation template of a bundle. Either SPHINX's fixed form (its {@code conv_v1_2} by default):
 * {@code system}, then for every turn {@code userPrefix + text + turnSeparator} or
 * {@code assistantPrefix + text + turnSeparator}, and finally {@code assistantPrefix} with no text so the model
 * answers, the image span inserted right after BOS, before the system text, as SPHINX does. Or, for a Hugging
 * Face model, its Jinja {@code chat_template}, which then decides everything, BOS included.
 *
 * @param system the system preamble
 * @param userPrefix text before a human turn, e.g. {@code "### Human: "}
 * @param assistantPrefix text before an assistant turn, e.g. {@code "### Assistant:"}
 * @param turnSeparator text after every finished turn, e.g. {@code "\n"}
 * @param jinja the Hugging Face chat template, or null for the fixed form
 * @param variables token strings a Jinja template reads ({@code bos_token}, {@code eos_token}, ...)
 */
public record ChatTemplate(String system, String userPrefix, String assistantPrefix, String turnSeparator, String jinja,
    Map<String, String> variables) {

  public ChatTemplate {
    variables = Map.copyOf(variables);
  }

  /** SPHINX's fixed form. */
  public ChatTemplate(String system, String userPrefix, String assistantPrefix, String turnSeparator) {
    this(system, userPrefix, assistantPrefix, turnSeparator, null, Map.of());
  }

  /** Whether a Jinja template renders the prompt. */
  public boolean isJinja() {
    return jinja != null;
  }
}
