package sphinxserve.server.generate;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.Tool;
import dev.sphinxserve.proto.v1.ToolCall;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import sphinxserve.api.ChatTemplate;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TextTokenizer;
import sphinxserve.runtime.chat.ChatPromptEncoder;
import sphinxserve.runtime.chat.ChatTemplateException;
import sphinxserve.runtime.chat.ChatTemplateLimits;
import sphinxserve.runtime.chat.ChatTurn;
import sphinxserve.runtime.chat.JinjaChatTemplate;
import sphinxserve.runtime.chat.ToolCallFormat;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

/**
 * Renders a conversation into prompt token ids with the bundle's {@link ChatTemplate}: a Hugging Face model's
 * Jinja template through {@link ChatPromptEncoder} (the template writes BOS and every special token itself; text
 * a user types never becomes a special token), or SPHINX's fixed form as below.
 *
 * <p>Fixed form:
 * <p>Layout: {@code [BOS]}, then (with an image) {@code tokensPerImage} placeholder ids, then the tokens of
 * {@code system + Σ(prefix + text + separator) + assistantPrefix}, where prefix is the user or assistant
 * prefix by role. A message's text parts are joined with {@code "\n"}; images are not text and take no
 * place in it (SPHINX puts the image before the conversation whatever its position in the message). Special
 * ids are inserted by id; the tokenizer never turns text into a special token, so a user typing
 * {@code "<s>"} gets the characters, not BOS.
 *
 * <p>Tools (Jinja templates only): the request's tool definitions reach the template as {@code tools}, OpenAI's
 * {@code {"type": "function", "function": {"name", "description", "parameters"}}} objects with the parameters as a
 * JSON object, as transformers' {@code apply_chat_template(tools=...)} passes them; an assistant's tool calls as
 * {@code {"id", "type": "function", "function": {"name", "arguments"}}} with the arguments parsed from their JSON
 * text into an object (what the LLaMA 3.1 and Qwen templates' {@code arguments | tojson} expect, as vLLM does); a
 * TOOL message as role {@code tool} with its {@code tool_call_id}.
 */
public final class PromptRenderer {

  /** Index of the first image position: right after BOS. */
  static final int IMAGE_START = 1;

  private final ModelSpec spec;
  private final TextTokenizer tokenizer;
  private final ChatTemplateLimits limits;
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final TypeReference<Map<String, Object>> JSON_OBJECT = new TypeReference<>() {};

  /** The Jinja path; null for the fixed form. */
  private final ChatPromptEncoder jinja;
  /** How the model writes tool calls; null when it makes none the node can parse. */
  private final ToolCallStream.Syntax toolCallSyntax;

  /** A renderer with the default template budgets ({@link ChatTemplateLimits#DEFAULTS}). */
  public PromptRenderer(ModelSpec spec, TextTokenizer tokenizer) {
    this(spec, tokenizer, ChatTemplateLimits.DEFAULTS, null);
  }

  /** A renderer bounded by {@code limits} whose tool-call syntax is the template's. */
  public PromptRenderer(ModelSpec spec, TextTokenizer tokenizer, ChatTemplateLimits limits) {
    this(spec, tokenizer, limits, null);
  }

  /**
   * A renderer whose prompts are at most {@code limits.maxOutputChars()} characters, checked before tokenising, and
   * whose chat-template renders are bounded by {@code limits}.
   *
   * @param toolCallFormat how the model writes tool calls ({@code --tool-call-format}); null = as its chat template
   *     shows ({@link ToolCallFormat#detect}). SPHINX's fixed form makes none whatever this says.
   */
  public PromptRenderer(ModelSpec spec, TextTokenizer tokenizer, ChatTemplateLimits limits, ToolCallFormat toolCallFormat) {
    this.spec = spec;
    this.tokenizer = tokenizer;
    this.limits = limits;
    ChatTemplate t = spec.template();
    if (t.isJinja()) {
      Map<String, Object> variables = new HashMap<>(t.variables());
      Map<String, Integer> specials = tokenizer instanceof HfTextTokenizer hf ? hf.specialTokenIds() : Map.of();
      // No BOS of ours: as transformers' apply_chat_template, the template alone decides (most write {{ bos_token }}).
      this.jinja = new ChatPromptEncoder(JinjaChatTemplate.compile("the bundle's chat template", t.jinja(), variables, limits), tokenizer, specials, false);
      this.toolCallSyntax = syntax(toolCallFormat != null ? toolCallFormat : ToolCallFormat.detect(t.jinja()));
    } else {
      this.jinja = null;
      this.toolCallSyntax = null;
    }
  }

  /** The parser's syntax for a template's format; null for {@link ToolCallFormat#NONE}. */
  static ToolCallStream.Syntax syntax(ToolCallFormat format) {
    return switch (format) {
      case HERMES -> ToolCallStream.Syntax.HERMES;
      case LLAMA3_JSON -> ToolCallStream.Syntax.LLAMA_JSON;
      case NONE -> null;
    };
  }

  /** The template's text for {@code messages}, without BOS and image (fixed form only). */
  public String text(List<Message> messages) {
    ChatTemplate t = spec.template();
    boolean system = !messages.isEmpty() && messages.getFirst().getRole() == Role.SYSTEM;
    // A SYSTEM message takes the place of the default system text, keeping its paragraph break before the turns.
    StringBuilder sb = new StringBuilder(system ? text(messages.getFirst()) + "\n\n" : t.system());
    for (Message m : system ? messages.subList(1, messages.size()) : messages) {
      sb.append(m.getRole() == Role.USER ? t.userPrefix() : t.assistantPrefix()).append(text(m)).append(t.turnSeparator());
    }
    return sb.append(t.assistantPrefix()).toString();
  }

  /** A message's text parts joined with a line break (images take no place in the text). */
  private static String text(Message m) {
    StringBuilder sb = new StringBuilder();
    for (Content c : m.getContentList()) {
      if (c.getKindCase() != Content.KindCase.TEXT) continue;
      if (!sb.isEmpty()) sb.append('\n');
      sb.append(c.getText());
    }
    return sb.toString();
  }

  /**
   * The prompt's token ids: BOS, the image placeholders when {@code withImage}, the rendered text (fixed form); or
   * the Jinja template's rendering (a text-only model: no image).
   *
   * @throws RequestException INVALID_ARGUMENT on {@code messages} when the model's template refuses the conversation
   */
  public int[] render(List<Message> messages, boolean withImage) {
    return render(messages, List.of(), withImage);
  }

  /**
   * As {@link #render(List, boolean)}, offering {@code tools} to a Jinja template (none shown when empty: the
   * template's {@code tools} is then undefined, as transformers leaves it without tools).
   */
  public int[] render(List<Message> messages, List<Tool> tools, boolean withImage) {
    if (jinja != null) return renderJinja(messages, tools);
    String text = text(messages);
    if (text.length() > limits.maxOutputChars()) {
      throw RequestException.invalid("messages", "the prompt is " + text.length() + " characters, more than "
          + limits.maxOutputChars() + " (max-rendered-prompt-chars)");
    }
    int[] textIds = tokenizer.encode(text);
    int numImage = withImage ? spec.vision().tokensPerImage() : 0;
    int[] ids = new int[1 + numImage + textIds.length];
    ids[0] = spec.specialTokens().bos();
    java.util.Arrays.fill(ids, IMAGE_START, IMAGE_START + numImage, spec.specialTokens().imagePlaceholder());
    System.arraycopy(textIds, 0, ids, 1 + numImage, textIds.length);
    return ids;
  }

  private int[] renderJinja(List<Message> messages, List<Tool> tools) {
    List<ChatTurn> turns = new ArrayList<>(messages.size());
    for (int i = 0; i < messages.size(); i++) turns.add(turn(messages.get(i), "messages[" + i + "]"));
    List<Map<String, Object>> definitions = null;
    if (!tools.isEmpty()) {
      definitions = new ArrayList<>(tools.size());
      for (int i = 0; i < tools.size(); i++) definitions.add(definition(tools.get(i), "tools[" + i + "]"));
    }
    try {
      return jinja.encode(turns, definitions, true);
    } catch (ChatTemplateException e) {
      if (e.budget().isPresent()) {
        throw RequestException.invalid("messages", "rendering the conversation with the model's chat template went past "
            + "the budget of " + e.budget().get().description() + " (" + flag(e.budget().get()) + "): " + e.getMessage());
      }
      throw RequestException.invalid("messages", "the model's chat template refused the conversation: " + e.getMessage());
    }
  }

  /** The node flag that sets {@code budget}. */
  private static String flag(ChatTemplateException.Budget budget) {
    return switch (budget) {
      case OUTPUT_CHARS -> "max-rendered-prompt-chars";
      case ITERATIONS -> "template-max-iterations";
      case TIME -> "template-timeout";
      case DEPTH -> "a fixed depth of " + ChatTemplateLimits.DEFAULTS.maxDepth();
    };
  }

  /** A message as the template sees it: an assistant's calls with parsed arguments, a tool's result with its call id. */
  private static ChatTurn turn(Message m, String field) {
    String text = text(m);
    return switch (m.getRole()) {
      case SYSTEM -> ChatTurn.system(text);
      case ASSISTANT -> {
        if (m.getToolCallsCount() == 0) yield ChatTurn.assistant(text);
        List<ChatTurn.ToolCall> calls = new ArrayList<>(m.getToolCallsCount());
        for (int k = 0; k < m.getToolCallsCount(); k++) {
          ToolCall call = m.getToolCalls(k);
          String arguments = call.getArguments().isEmpty() ? "{}" : call.getArguments();
          calls.add(new ChatTurn.ToolCall(call.getId(), call.getName(), object(arguments, field + ".tool_calls[" + k + "].arguments")));
        }
        // OpenAI's "content": null for an answer that is only calls; templates test `if message.content`.
        yield ChatTurn.assistantToolCalls(text.isEmpty() ? null : text, calls);
      }
      case TOOL -> ChatTurn.tool(m.getToolCallId(), text);
      default -> ChatTurn.user(text);
    };
  }

  /** A tool as transformers passes an OpenAI-style definition: description and parameters only when given. */
  private static Map<String, Object> definition(Tool tool, String field) {
    Map<String, Object> function = new LinkedHashMap<>();
    function.put("name", tool.getName());
    if (!tool.getDescription().isEmpty()) function.put("description", tool.getDescription());
    if (!tool.getParameters().isEmpty()) function.put("parameters", object(tool.getParameters(), field + ".parameters"));
    Map<String, Object> definition = new LinkedHashMap<>();
    definition.put("type", "function");
    definition.put("function", function);
    return definition;
  }

  /** A JSON object's text as a map (key order kept); the validator has checked it is one. */
  private static Map<String, Object> object(String json, String field) {
    try {
      Map<String, Object> map = JSON.readValue(json, JSON_OBJECT);
      if (map == null) throw RequestException.invalid(field, "must be a JSON object");
      return map;
    } catch (JsonProcessingException e) {
      throw RequestException.invalid(field, "must be a JSON object: " + e.getOriginalMessage());
    }
  }

  /** How the model writes tool calls (its chat template's syntax, or {@code --tool-call-format}'s); null when none. */
  public ToolCallStream.Syntax toolCallSyntax() {
    return toolCallSyntax;
  }
}
