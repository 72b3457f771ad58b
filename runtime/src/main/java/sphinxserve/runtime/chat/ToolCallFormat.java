package sphinxserve.runtime.chat;

import java.util.Locale;

/**
 * How a model writes a tool call, recognised from its chat template (the template renders past calls the way the
 * model was trained to make them).
 */
public enum ToolCallFormat {
  /**
   * LLaMA 3.1+: a JSON object {@code {"name": ..., "parameters": {...}}} as the whole answer, optionally after
   * {@code <|python_tag|>} (3.1's built-in tools, and what 3.1 models often emit for custom ones too).
   */
  LLAMA3_JSON("llama3_json"),
  /** Hermes 2 Pro / Qwen 2.5+: one {@code <tool_call>{"name": ..., "arguments": {...}}</tool_call>} block per call. */
  HERMES("hermes"),
  /** The template renders no tool calls: the model is not known to make any. */
  NONE("none");

  /*
   * The signs are the templates' own renderings of an assistant's tool call, which is what the model was trained
   * on: Hermes/Qwen templates wrap each call in "<tool_call>" (and describe tools in "<tools>"); Meta's LLaMA 3.1,
   * 3.2 and 3.3 templates write '{"name": "' + tool_call.name + '", "parameters": ' (3.1 also "<|python_tag|>").
   * A template that mentions neither renders no calls. The names are vLLM's --tool-call-parser values.
   */

  private final String flagName;

  ToolCallFormat(String flagName) {
    this.flagName = flagName;
  }

  /** The name a flag gives this format ({@code llama3_json}, {@code hermes}, {@code none}), as vLLM names them. */
  public String flagName() {
    return flagName;
  }

  /** The format {@code template} (a chat_template's Jinja text) renders tool calls in; {@link #NONE} if it renders none. */
  public static ToolCallFormat detect(String template) {
    if (template.contains("<tool_call>")) {
      return HERMES;
    }
    boolean llamaJson = template.contains("\"parameters\": ") && template.contains("{\"name\": ");
    if (template.contains("<|python_tag|>") || llamaJson && template.contains("tool_call")) {
      return LLAMA3_JSON;
    }
    return NONE;
  }

  /**
   * The format named {@code name} ({@link #flagName()}, case-insensitive).
   *
   * @throws IllegalArgumentException naming the accepted values
   */
  public static ToolCallFormat fromFlagName(String name) {
    for (ToolCallFormat format : values()) {
      if (format.flagName.equals(name.trim().toLowerCase(Locale.ROOT))) {
        return format;
      }
    }
    throw new IllegalArgumentException("tool-call format must be llama3_json, hermes or none, got '" + name + "'");
  }
}
