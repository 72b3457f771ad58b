package sphinxserve.server.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import sphinxserve.api.ModelSpec;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;
import sphinxserve.server.generate.PromptRenderer;

/** The prompt layout with the TEST bundle's real template and tokenizer. */
final class PromptRendererTest {

  private static Message message(Role role, Content... content) {
    return Message.newBuilder().setRole(role).addAllContent(List.of(content)).build();
  }

  private static Content text(String t) {
    return Content.newBuilder().setText(t).build();
  }

  @Test
  void render_withImage_bosThenImageSpanThenTemplateText() throws Exception {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    ModelSpec spec = bundle.spec();
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(bundle.tokenizerFile())) {
      PromptRenderer renderer = new PromptRenderer(spec, tokenizer);
      List<Message> conversation = List.of(
          message(Role.USER, text("What is"), Content.newBuilder().setImageDigest("a".repeat(64)).build(), text("this <s>?")),
          message(Role.ASSISTANT, text("A cat.")),
          message(Role.USER, text("Where?")));
      String expectedText = spec.template().system() + "### Human: What is\nthis <s>?\n### Assistant:A cat.\n### Human: Where?\n### Assistant:";
      assertEquals(expectedText, renderer.text(conversation));

      int[] ids = renderer.render(conversation, true);
      int numImage = spec.vision().tokensPerImage();
      assertEquals(spec.specialTokens().bos(), ids[0]);
      for (int i = 0; i < numImage; i++) assertEquals(spec.specialTokens().imagePlaceholder(), ids[PromptRenderer.IMAGE_START + i]);
      int[] textIds = Arrays.copyOfRange(ids, 1 + numImage, ids.length);
      assertArrayEquals(tokenizer.encode(expectedText), textIds);
      // Typed "<s>" stays text: BOS appears once, at 0.
      assertEquals(1, Arrays.stream(ids).filter(id -> id == spec.specialTokens().bos()).count());

      int[] noImage = renderer.render(conversation, false);
      assertEquals(textIds.length + 1, noImage.length);
    }
  }

  @Test
  void systemMessageTakesThePlaceOfTheDefaultSystemText() throws Exception {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(bundle.tokenizerFile())) {
      PromptRenderer renderer = new PromptRenderer(bundle.spec(), tokenizer);
      List<Message> conversation = List.of(message(Role.SYSTEM, text("Answer in French.")), message(Role.USER, text("Hi")));
      assertEquals("Answer in French.\n\n### Human: Hi\n### Assistant:", renderer.text(conversation));
    }
  }

  @Test
  void promptLongerThanTheRenderedLimit_isRefusedBeforeTokenising() throws Exception {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(bundle.tokenizerFile())) {
      int limit = new PromptRenderer(bundle.spec(), tokenizer).text(List.of(message(Role.USER, text("hi")))).length() + 20;
      PromptRenderer renderer = new PromptRenderer(bundle.spec(), tokenizer,
          sphinxserve.runtime.chat.ChatTemplateLimits.DEFAULTS.withMaxOutputChars(limit));
      List<Message> conversation = List.of(message(Role.USER, text("x".repeat(limit))));
      RequestException e = org.junit.jupiter.api.Assertions.assertThrows(RequestException.class, () -> renderer.render(conversation, false));
      assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, e.status().getCode());
      String description = e.status().getDescription();
      org.junit.jupiter.api.Assertions.assertTrue(description.startsWith("messages: ") && description.contains("max-rendered-prompt-chars"),
          description);
      assertEquals(1 + tokenizer.encode(renderer.text(List.of(message(Role.USER, text("hi"))))).length,
          renderer.render(List.of(message(Role.USER, text("hi"))), false).length);
    }
  }
}
