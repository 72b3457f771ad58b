package sphinxserve.runtime.chat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import sphinxserve.api.TextTokenizer;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

/**
 * Turns a conversation into prompt token ids through a chat template, such that message text can never become a
 * control token. Thread-safe when the tokenizer is.
 */
public final class ChatPromptEncoder {
  /*
   * transformers tokenizes the rendered prompt with special tokens parsed, so a user who types "<|eot_id|>" or
   * "</s>" ends their turn (or the conversation) for the model: prompt injection. Here:
   *
   *   1. escape   in every message content, each occurrence of a special-token string, and of the placeholder
   *               delimiters U+E000/U+E001 themselves, becomes U+E000 <index> U+E001 (index into `escapes`);
   *   2. render   the template sees only escaped contents, so every special string in its output is its own;
   *   3. split    the output at special-token strings (longest match first): those become their ids;
   *   4. encode   the text between them: placeholders restored to the original strings, then the tokenizer's
   *               plain encode, which never yields special ids (HfTextTokenizer's contract).
   *
   *   rendered:  <s>[INST] hi \uE0000\uE001 [/INST]      (user typed "hi </s>")
   *   ids:       [<s>] encode("[INST] hi </s> [/INST]")
   *
   * For contents free of special strings the ids equal Hugging Face's tokenization of the rendered text for
   * tokenizers that pre-tokenize each piece between specials independently (byte-level BPE: LLaMA-3, SmolLM,
   * this project's bundles). SentencePiece-style tokenizers with a "prepend ▁ to the first piece only"
   * normalizer (LLaMA-2, TinyLlama) may differ by that one space marker per piece: each piece is encoded here as
   * a text of its own.
   *
   * BOS: chat templates usually write it themselves ({{ bos_token }}: LLaMA-2, LLaMA-3, zephyr) and transformers
   * then adds none. For templates that do not (ChatML), a model whose tokenizer_config.json says add_bos_token
   * wants one: with addBos, the BOS id is prepended unless the rendered text already starts with the BOS string.
   */

  /** First character of a placeholder (Unicode private use area). */
  static final char PLACEHOLDER_START = '\uE000';
  /** Last character of a placeholder. */
  static final char PLACEHOLDER_END = '\uE001';

  private final JinjaChatTemplate template;
  private final TextTokenizer tokenizer;
  private final Map<String, Integer> specialTokenIds;
  /** Strings a placeholder may stand for: every special-token string, then the two delimiters. */
  private final List<String> escapes;
  /** Special-token strings by first character, longest first, for matching. */
  private final Map<Character, List<String>> specialsByFirstChar;
  private final String bosToken;
  private final int bosId;

  /**
   * An encoder over {@code tokenizer} and its {@link HfTextTokenizer#specialTokenIds special tokens}.
   *
   * @param addBos prepend BOS unless the rendered text starts with it (tokenizer_config.json's add_bos_token)
   */
  public ChatPromptEncoder(JinjaChatTemplate template, HfTextTokenizer tokenizer, boolean addBos) {
    this(template, tokenizer, tokenizer.specialTokenIds(), addBos);
  }

  /**
   * An encoder over any tokenizer whose {@code encode} never produces the given special ids.
   *
   * @param specialTokenIds content to id of every special token
   * @param addBos prepend BOS unless the rendered text starts with it; the template's {@code bos_token} variable
   *     must then name a special token
   * @throws IllegalArgumentException when {@code addBos} is set and {@code bos_token} is not a special token
   */
  public ChatPromptEncoder(JinjaChatTemplate template, TextTokenizer tokenizer, Map<String, Integer> specialTokenIds,
      boolean addBos) {
    this.template = Objects.requireNonNull(template, "template");
    this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
    this.specialTokenIds = Map.copyOf(specialTokenIds);
    List<String> specials = new ArrayList<>(specialTokenIds.keySet());
    specials.removeIf(String::isEmpty);
    specials.sort(Comparator.comparingInt(String::length).reversed().thenComparing(Comparator.naturalOrder()));
    this.escapes = new ArrayList<>(specials);
    escapes.add(String.valueOf(PLACEHOLDER_START));
    escapes.add(String.valueOf(PLACEHOLDER_END));
    this.specialsByFirstChar = new HashMap<>();
    for (String special : specials) {
      specialsByFirstChar.computeIfAbsent(special.charAt(0), c -> new ArrayList<>()).add(special);
    }
    if (addBos) {
      Object bos = template.variables().get("bos_token");
      if (!(bos instanceof String s) || !specialTokenIds.containsKey(s)) {
        throw new IllegalArgumentException(template.sourceName() + ": add_bos needs a bos_token that is a special token, got " + bos);
      }
      this.bosToken = s;
      this.bosId = specialTokenIds.get(s);
    } else {
      this.bosToken = null;
      this.bosId = -1;
    }
  }

  /**
   * The prompt ids of {@code turns}: the template's special tokens by id, message text never as a special id.
   *
   * @throws ChatTemplateException when the template rejects the conversation
   */
  public int[] encode(List<ChatTurn> turns, boolean addGenerationPrompt) {
    return encode(turns, null, addGenerationPrompt);
  }

  /**
   * The prompt ids of {@code turns} offering {@code tools} (see {@link JinjaChatTemplate#render(List, List, boolean)}):
   * every string the caller gave, in messages, tool calls and tool definitions (keys included), is escaped as
   * message content is, so none of it becomes a special id.
   *
   * @param tools the tool definitions as given; null for none
   * @throws ChatTemplateException when the template rejects the conversation or goes past a budget
   */
  public int[] encode(List<ChatTurn> turns, List<? extends Map<String, ?>> tools, boolean addGenerationPrompt) {
    List<ChatTurn> escaped = new ArrayList<>(turns.size());
    for (ChatTurn turn : turns) {
      List<ChatTurn.ToolCall> calls = new ArrayList<>(turn.toolCalls().size());
      for (ChatTurn.ToolCall call : turn.toolCalls()) {
        calls.add(new ChatTurn.ToolCall(escapeNullable(call.id()), escape(call.name()), escapeValue(call.arguments())));
      }
      escaped.add(new ChatTurn(escape(turn.role()), escapeNullable(turn.content()), calls,
          escapeNullable(turn.toolCallId()), escapeNullable(turn.name())));
    }
    List<Map<String, ?>> escapedTools = null;
    if (tools != null) {
      escapedTools = new ArrayList<>(tools.size());
      for (Map<String, ?> tool : tools) {
        @SuppressWarnings("unchecked")
        Map<String, ?> copy = (Map<String, ?>) escapeValue(tool);
        escapedTools.add(copy);
      }
    }
    String rendered = template.render(escaped, escapedTools, addGenerationPrompt);
    IntList ids = new IntList();
    if (bosToken != null && !rendered.startsWith(bosToken)) {
      ids.add(bosId);
    }
    int textStart = 0;
    int i = 0;
    while (i < rendered.length()) {
      String special = specialAt(rendered, i);
      if (special == null) {
        i++;
        continue;
      }
      encodeText(rendered.substring(textStart, i), ids);
      ids.add(specialTokenIds.get(special));
      i += special.length();
      textStart = i;
    }
    encodeText(rendered.substring(textStart), ids);
    return ids.toArray();
  }

  /** {@code content} with every special string and placeholder delimiter replaced by its placeholder. */
  String escape(String content) {
    StringBuilder out = new StringBuilder(content.length());
    int i = 0;
    while (i < content.length()) {
      char c = content.charAt(i);
      String match = c == PLACEHOLDER_START || c == PLACEHOLDER_END ? String.valueOf(c) : specialAt(content, i);
      if (match == null) {
        out.append(c);
        i++;
      } else {
        out.append(PLACEHOLDER_START).append(escapes.indexOf(match)).append(PLACEHOLDER_END);
        i += match.length();
      }
    }
    return out.toString();
  }

  private String escapeNullable(String content) {
    return content == null ? null : escape(content);
  }

  /** A copy of a JSON-like value with every string in it, map keys included, {@link #escape escaped}. */
  private Object escapeValue(Object value) {
    return switch (value) {
      case String s -> escape(s);
      case Map<?, ?> map -> {
        Map<String, Object> copy = new java.util.LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
          copy.put(escape(String.valueOf(e.getKey())), escapeValue(e.getValue()));
        }
        yield copy;
      }
      case List<?> list -> {
        List<Object> copy = new ArrayList<>(list.size());
        for (Object item : list) {
          copy.add(escapeValue(item));
        }
        yield copy;
      }
      case null, default -> value; // numbers, booleans, null
    };
  }

  /** {@code text} with placeholders replaced by the strings they stand for; anything else unchanged. */
  String restore(String text) {
    StringBuilder out = new StringBuilder(text.length());
    int i = 0;
    while (i < text.length()) {
      char c = text.charAt(i);
      if (c == PLACEHOLDER_START) {
        int end = i + 1;
        while (end < text.length() && end - i <= 10 && Character.isDigit(text.charAt(end)) && text.charAt(end) < 128) {
          end++;
        }
        if (end > i + 1 && end < text.length() && text.charAt(end) == PLACEHOLDER_END) {
          int index = Integer.parseInt(text, i + 1, end, 10);
          if (index < escapes.size()) {
            out.append(escapes.get(index));
            i = end + 1;
            continue;
          }
        }
      }
      out.append(c);
      i++;
    }
    return out.toString();
  }

  private void encodeText(String piece, IntList ids) {
    if (!piece.isEmpty()) {
      ids.addAll(tokenizer.encode(restore(piece)));
    }
  }

  /** The longest special-token string starting at {@code text[i]}, or null. */
  private String specialAt(String text, int i) {
    List<String> candidates = specialsByFirstChar.get(text.charAt(i));
    if (candidates != null) {
      for (String special : candidates) {
        if (text.startsWith(special, i)) {
          return special;
        }
      }
    }
    return null;
  }

  /** A growable int array. */
  private static final class IntList {
    private int[] values = new int[64];
    private int size;

    void add(int value) {
      if (size == values.length) {
        values = Arrays.copyOf(values, size * 2);
      }
      values[size++] = value;
    }

    void addAll(int[] more) {
      for (int value : more) {
        add(value);
      }
    }

    int[] toArray() {
      return Arrays.copyOf(values, size);
    }
  }
}
