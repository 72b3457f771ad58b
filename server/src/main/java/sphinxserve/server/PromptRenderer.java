package sphinxserve.server;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import java.util.List;
import sphinxserve.api.ChatTemplate;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TextTokenizer;

/**
 * Renders a conversation into prompt token ids with the bundle's {@link ChatTemplate}.
 *
 * <p>Layout: {@code [BOS]}, then (with an image) {@code tokensPerImage} placeholder ids, then the tokens of
 * {@code system + Σ(prefix + text + separator) + assistantPrefix}, where prefix is the user or assistant
 * prefix by role. A message's text parts are joined with {@code "\n"}; images are not text and take no
 * place in it (SPHINX puts the image before the conversation whatever its position in the message). Special
 * ids are inserted by id; the tokenizer never turns text into a special token, so a user typing
 * {@code "<s>"} gets the characters, not BOS.
 */
final class PromptRenderer {

  /** Index of the first image position: right after BOS. */
  static final int IMAGE_START = 1;

  private final ModelSpec spec;
  private final TextTokenizer tokenizer;

  PromptRenderer(ModelSpec spec, TextTokenizer tokenizer) {
    this.spec = spec;
    this.tokenizer = tokenizer;
  }

  /** The template's text for {@code messages}, without BOS and image. */
  String text(List<Message> messages) {
    ChatTemplate t = spec.template();
    StringBuilder sb = new StringBuilder(t.system());
    for (Message m : messages) {
      sb.append(m.getRole() == Role.USER ? t.userPrefix() : t.assistantPrefix());
      boolean first = true;
      for (Content c : m.getContentList()) {
        if (c.getKindCase() != Content.KindCase.TEXT) continue;
        if (!first) sb.append('\n');
        sb.append(c.getText());
        first = false;
      }
      sb.append(t.turnSeparator());
    }
    return sb.append(t.assistantPrefix()).toString();
  }

  /** The prompt's token ids: BOS, the image placeholders when {@code withImage}, the rendered text. */
  int[] render(List<Message> messages, boolean withImage) {
    int[] textIds = tokenizer.encode(text(messages));
    int numImage = withImage ? spec.vision().tokensPerImage() : 0;
    int[] ids = new int[1 + numImage + textIds.length];
    ids[0] = spec.specialTokens().bos();
    java.util.Arrays.fill(ids, IMAGE_START, IMAGE_START + numImage, spec.specialTokens().imagePlaceholder());
    System.arraycopy(textIds, 0, ids, 1 + numImage, textIds.length);
    return ids;
  }
}
