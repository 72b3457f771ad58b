package sphinxserve.server.generate;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import java.util.ArrayList;
import java.util.HashMap;
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
 */
public final class PromptRenderer {

  /** Index of the first image position: right after BOS. */
  static final int IMAGE_START = 1;

  private final ModelSpec spec;
  private final TextTokenizer tokenizer;
  private final ChatTemplateLimits limits;
  /** The Jinja path; null for the fixed form. */
  private final ChatPromptEncoder jinja;

  /** A renderer with the default template budgets ({@link ChatTemplateLimits#DEFAULTS}). */
  public PromptRenderer(ModelSpec spec, TextTokenizer tokenizer) {
    this(spec, tokenizer, ChatTemplateLimits.DEFAULTS);
  }

  /**
   * A renderer whose prompts are at most {@code limits.maxOutputChars()} characters, checked before tokenising, and
   * whose chat-template renders are bounded by {@code limits}.
   */
  public PromptRenderer(ModelSpec spec, TextTokenizer tokenizer, ChatTemplateLimits limits) {
    this.spec = spec;
    this.tokenizer = tokenizer;
    this.limits = limits;
    ChatTemplate t = spec.template();
    if (t.isJinja()) {
      Map<String, Object> variables = new HashMap<>(t.variables());
      Map<String, Integer> specials = tokenizer instanceof HfTextTokenizer hf ? hf.specialTokenIds() : Map.of();
      // No BOS of ours: as transformers' apply_chat_template, the template alone decides (most write {{ bos_token }}).
      this.jinja = new ChatPromptEncoder(JinjaChatTemplate.compile("the bundle's chat template", t.jinja(), variables, limits), tokenizer, specials, false);
    } else {
      this.jinja = null;
    }
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
    if (jinja != null) return renderJinja(messages);
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

  private int[] renderJinja(List<Message> messages) {
    List<ChatTurn> turns = new ArrayList<>(messages.size());
    for (Message m : messages) {
      String role = switch (m.getRole()) {
        case SYSTEM -> "system";
        case ASSISTANT -> "assistant";
        default -> "user";
      };
      turns.add(new ChatTurn(role, text(m)));
    }
    try {
      return jinja.encode(turns, true);
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

  /** How the model writes tool calls, from its chat template; null when it takes no tools. */
  public ToolCallStream.Syntax toolCallSyntax() {
    return null; // TODO(integration): the template's ToolCallFormat
  }
}
