package sphinxserve.runtime.chat;

import java.util.List;
import java.util.Objects;

/**
 * One message of a conversation, as transformers' {@code apply_chat_template} takes it: the template sees it as
 * the dict {@code {"role", "content", "tool_calls"?, "tool_call_id"?, "name"?}} (keys absent when unset).
 *
 * @param role {@code "system"}, {@code "user"}, {@code "assistant"} or {@code "tool"} (templates decide what they
 *     accept)
 * @param content the message text, as the user, model or tool wrote it; null only for an assistant turn that
 *     carries tool calls (OpenAI's {@code "content": null})
 * @param toolCalls the assistant's tool calls, in order; empty for other turns
 * @param toolCallId a {@code tool} turn's answer to which call ({@code tool_call_id}); null when unset
 * @param name a {@code tool} turn's function name ({@code name}); null when unset
 */
public record ChatTurn(String role, String content, List<ToolCall> toolCalls, String toolCallId, String name) {

  /**
   * One tool call of an assistant turn; the template sees
   * {@code {"id"?, "type": "function", "function": {"name", "arguments"}}}.
   *
   * @param id the call's id (OpenAI's {@code call_...}); null when unset
   * @param name the function's name
   * @param arguments what the template sees as {@code function.arguments}, passed as given, as transformers passes
   *     it: a JSON object as a {@code Map} (what the LLaMA-3.1 and Qwen templates' {@code arguments | tojson} and
   *     transformers' documentation expect; an OpenAI request's JSON string should be parsed into one, as vLLM does),
   *     or a {@code String} for templates that test {@code arguments is string}; JSON-like values only (Map with
   *     String keys, List, String, Number, Boolean, null)
   */
  public record ToolCall(String id, String name, Object arguments) {
    public ToolCall {
      Objects.requireNonNull(name, "name");
    }
  }

  public ChatTurn {
    Objects.requireNonNull(role, "role");
    toolCalls = List.copyOf(Objects.requireNonNull(toolCalls, "toolCalls"));
    if (content == null && toolCalls.isEmpty()) {
      throw new NullPointerException("content (null only for an assistant turn with tool calls)");
    }
  }

  /** A turn of {@code role} saying {@code content}, without tool calls. */
  public ChatTurn(String role, String content) {
    this(role, content, List.of(), null, null);
  }

  /** A {@code system} turn. */
  public static ChatTurn system(String content) {
    return new ChatTurn("system", content);
  }

  /** A {@code user} turn. */
  public static ChatTurn user(String content) {
    return new ChatTurn("user", content);
  }

  /** An {@code assistant} turn. */
  public static ChatTurn assistant(String content) {
    return new ChatTurn("assistant", content);
  }

  /** An {@code assistant} turn making {@code calls}; {@code content} may be null (none). */
  public static ChatTurn assistantToolCalls(String content, List<ToolCall> calls) {
    if (calls.isEmpty()) {
      throw new IllegalArgumentException("an assistant tool-call turn needs at least one call");
    }
    return new ChatTurn("assistant", content, calls, null, null);
  }

  /** A {@code tool} turn: the result {@code content} of the call {@code toolCallId} (may be null). */
  public static ChatTurn tool(String toolCallId, String content) {
    return new ChatTurn("tool", content, List.of(), toolCallId, null);
  }

  /** This turn with {@code name} set (a {@code tool} turn's function name). */
  public ChatTurn withName(String functionName) {
    return new ChatTurn(role, content, toolCalls, toolCallId, functionName);
  }
}
