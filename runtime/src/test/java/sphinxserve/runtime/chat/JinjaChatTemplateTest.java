package sphinxserve.runtime.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Real chat templates (test resources {@code chat-templates/}, README there) against the exact strings
 * transformers' apply_chat_template renders; expected strings are derived from the templates' Jinja semantics
 * and cross-checked with llama.cpp's tests/test-chat-template.cpp where it has the same template.
 */
class JinjaChatTemplateTest {

  /** System + user + assistant + user, the conversation every template test renders. */
  static final List<ChatTurn> CONVERSATION = List.of(
      ChatTurn.system("You are a helpful assistant"),
      ChatTurn.user("Hello"),
      ChatTurn.assistant("Hi there"),
      ChatTurn.user("Who are you"));

  /** 2025-03-05T12:00Z: strftime_now("%d %b %Y") is "05 Mar 2025". */
  static final Clock CLOCK = Clock.fixed(Instant.parse("2025-03-05T12:00:00Z"), ZoneOffset.UTC);

  static final Map<String, Object> LLAMA2_TOKENS = Map.of("bos_token", "<s>", "eos_token", "</s>", "unk_token", "<unk>");
  static final Map<String, Object> LLAMA3_TOKENS = Map.of("bos_token", "<|begin_of_text|>", "eos_token", "<|eot_id|>");
  static final Map<String, Object> SMOLLM_TOKENS = Map.of("bos_token", "<|im_start|>", "eos_token", "<|im_end|>",
      "unk_token", "<|endoftext|>", "pad_token", "<|im_end|>");

  static JinjaChatTemplate load(String file, Map<String, Object> variables) {
    return JinjaChatTemplate.compile(file, resource(file), variables, CLOCK);
  }

  static String resource(String file) {
    try (InputStream in = JinjaChatTemplateTest.class.getResourceAsStream("/chat-templates/" + file)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Test
  void render_tinyLlamaZephyr_matchesHuggingFace() {
    JinjaChatTemplate template = load("TinyLlama-TinyLlama-1.1B-Chat-v1.0.jinja", LLAMA2_TOKENS);
    assertEquals("<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n"
        + "<|user|>\nWho are you</s>\n<|assistant|>\n", template.render(CONVERSATION, true));
    assertEquals("<|user|>\nHello</s>\n", template.render(List.of(ChatTurn.user("Hello")), false));
  }

  @Test
  void render_llama2Chat_matchesHuggingFace() {
    JinjaChatTemplate template = load("meta-llama-Llama-2-7b-chat-hf.jinja", LLAMA2_TOKENS);
    // The template has no generation prompt: the user turn already ends with [/INST].
    assertEquals("<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>"
        + "<s>[INST] Who are you [/INST]", template.render(CONVERSATION, true));
  }

  @Test
  void render_llama2Chat_stripIsPythons() {
    JinjaChatTemplate template = load("meta-llama-Llama-2-7b-chat-hf.jinja", LLAMA2_TOKENS);
    // str.strip() removes U+00A0 and U+3000 too; Java's String.strip() would keep the no-break space.
    assertEquals("<s>[INST] Hello [/INST]", template.render(List.of(ChatTurn.user("\u00a0 Hello\u3000\n")), true));
  }

  @Test
  void render_llama32Instruct_matchesHuggingFace() {
    JinjaChatTemplate template = load("meta-llama-Llama-3.2-3B-Instruct.jinja", LLAMA3_TOKENS);
    assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        + "Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\n"
        + "You are a helpful assistant<|eot_id|>"
        + "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        + "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
        + "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
        + "<|start_header_id|>assistant<|end_header_id|>\n\n", template.render(CONVERSATION, true));
  }

  @Test
  void render_llama32Instruct_noSystemMessage_dateStringVariableWins() {
    JinjaChatTemplate template = JinjaChatTemplate.compile("llama-3.2", resource("meta-llama-Llama-3.2-3B-Instruct.jinja"),
        Map.of("bos_token", "<|begin_of_text|>", "date_string", "26 Jul 2024"), CLOCK);
    assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        + "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", template.render(List.of(ChatTurn.user("  Hi\n")), false));
  }

  @Test
  void render_smolLm2ChatMl_matchesHuggingFace() {
    JinjaChatTemplate template = load("HuggingFaceTB-SmolLM2-135M-Instruct.jinja", SMOLLM_TOKENS);
    assertEquals("<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        + "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n",
        template.render(CONVERSATION, true));
    // Without a system turn the template supplies SmolLM's own.
    assertEquals("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        + "<|im_start|>user\nHello<|im_end|>\n", template.render(List.of(ChatTurn.user("Hello")), false));
  }

  @Test
  void render_rolesNotAlternating_raisesTemplatesMessage() {
    JinjaChatTemplate template = load("meta-llama-Llama-2-7b-chat-hf.jinja", LLAMA2_TOKENS);
    ChatTemplateException e = assertThrows(ChatTemplateException.class,
        () -> template.render(List.of(ChatTurn.user("a"), ChatTurn.user("b")), true));
    assertEquals("meta-llama-Llama-2-7b-chat-hf.jinja: chat template raised: "
        + "Conversation roles must alternate user/assistant/user/assistant/...", e.getMessage());
  }

  @Test
  void compile_unclosedBlock_fails() {
    ChatTemplateException e = assertThrows(ChatTemplateException.class,
        () -> JinjaChatTemplate.compile("broken.jinja", "{% for m in messages %}{{ m.content }}", Map.of()));
    assertTrue(e.getMessage().startsWith("broken.jinja: chat template does not parse"), e.getMessage());
    assertTrue(e.getMessage().contains("endfor"), e.getMessage());
  }

  @Test
  void render_brokenExpression_failsNotEmpty() {
    JinjaChatTemplate template = JinjaChatTemplate.compile("broken.jinja", "x{{ messages[0].content + }}", Map.of());
    ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> template.render(CONVERSATION, true));
    assertTrue(e.getMessage().startsWith("broken.jinja: chat template failed (line 1): "), e.getMessage());
  }

  @Test
  void render_unknownMethod_fails() {
    JinjaChatTemplate template = JinjaChatTemplate.compile("m.jinja", "{{ messages[0].content.frobnicate() }}", Map.of());
    ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> template.render(CONVERSATION, true));
    assertTrue(e.getMessage().contains("frobnicate"), e.getMessage());
  }

  @Test
  void render_pythonisms_asJinjaRendersThem() {
    String source = "{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.first %}[{% endif %}"
        + "{{ m.role.title() }}:{{ m.content.upper() }}{% set ns.n = ns.n + 1 %}{% if not loop.last %},{% endif %}{% endfor %}]"
        + " {{ ns.n }} {{ messages[1:] | length }} {{ 'a, b,,c'.split(',') | length }} {{ ' x y '.split() | join('|') }}"
        + " {{ 'abc'.startswith('ab') and 'abc'.endswith('bc') }} {{ 'aXbX'.replace('X', '-') }} {{ tools is defined }}"
        + " {{ undefined_name }}|{{ True }} {{ {'a': [1, 'é']} | tojson }} {{ 'x\n' | trim }}";
    JinjaChatTemplate template = JinjaChatTemplate.compile("py.jinja", source, Map.of());
    assertEquals("[System:YOU ARE A HELPFUL ASSISTANT,User:HELLO,Assistant:HI THERE,User:WHO ARE YOU] 4 3 4 x|y"
        + " true a-b- false |true {\"a\": [1, \"é\"]} x", template.render(CONVERSATION, false));
  }

  @Test
  void render_notPrecedence_isJinjas() {
    String source = "{{ not bos_token is defined }} {{ not nothing is defined }} {{ not messages|length == 1 }}"
        + " {{ not bos_token == 'x' }} {{ not add_generation_prompt and true }} {{ not 'a' in 'abc' }}";
    JinjaChatTemplate template = JinjaChatTemplate.compile("not.jinja", source, Map.of("bos_token", "<s>"));
    assertEquals("false true true true false false", template.render(CONVERSATION, true));
  }
}
