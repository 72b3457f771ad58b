package sphinxserve.server.generate;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits a model's answer, as it streams, into plain content and tool calls written in the model's tool-call
 * syntax. Not thread-safe: one instance per answer, fed in order.
 */
public final class ToolCallStream {
  /*
   * Two syntaxes, recognised from the chat template (runtime.chat.ToolCallFormat):
   *   HERMES  (Hermes-2-Pro, Qwen2.5): content, then any number of
   *           <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call> blocks;
   *   LLAMA_JSON (LLaMA 3.1+): the whole answer is {"name": "f", "parameters": {...}} (several joined by ";").
   *
   * Streaming as OpenAI streams calls: once a call's head `{"name": "f", "arguments":` has arrived, a CallStart
   * event names it, then the arguments value's text follows in CallArguments fragments as it arrives, until
   * the value's closing bracket (a small JSON lexer tracks depth, strings and escapes). A call whose keys come
   * in another order is buffered to its end and parsed whole. Text that may still turn into a call's opening
   * (a partial "<tool_call>") is held back, as stop strings are, so content never shows half a marker.
   */

  /** The syntax of tool calls in the model's answers. */
  public enum Syntax {
    /** {@code <tool_call>{json}</tool_call>} blocks after optional content. */
    HERMES,
    /** The answer is one JSON object {@code {"name", "parameters"}} (or several joined by {@code ;}). */
    LLAMA_JSON
  }

  /** What the answer holds, piece by piece. */
  public sealed interface Event {}

  /** Plain text of the answer. */
  public record Content(String text) implements Event {}

  /** Call {@code index} (0-based, in answer order) begins; its id is made here. */
  public record CallStart(int index, String id, String name) implements Event {}

  /** More text of call {@code index}'s arguments (JSON). */
  public record CallArguments(int index, String fragment) implements Event {}

  /** A complete call. */
  public record Call(String id, String name, String arguments) {}

  private static final String OPEN = "<tool_call>";
  private static final String CLOSE = "</tool_call>";
  /** A call's head in the usual key order: the name, then the arguments' key. */
  private static final Pattern HEAD = Pattern.compile("^\\s*+\\{\\s*+\"name\"\\s*+:\\s*+\"([^\"\\\\]*+(?:\\\\.[^\"\\\\]*+)*+)\"\\s*+,\\s*+\"(?:arguments|parameters)\"\\s*+:\\s*+");
  /** Longest head worth waiting for before giving up on streaming a call and buffering it whole. */
  private static final int MAX_HEAD_CHARS = 256;
  /** Longest call buffered whole (keys in another order); past it the text is content, so memory and scans stay bounded. */
  private static final int MAX_CALL_CHARS = 64 * 1024;

  private enum State { CONTENT, UNDECIDED, CALL_HEAD, CALL_ARGUMENTS, CALL_TAIL, CALL_WHOLE }

  private final Syntax syntax;
  private final StringBuilder pending = new StringBuilder();
  private final List<Call> calls = new ArrayList<>();
  private final StringBuilder content = new StringBuilder();
  private State state;
  private String callId;
  private String callName;
  private final StringBuilder arguments = new StringBuilder();
  private final JsonValueScanner scanner = new JsonValueScanner();
  /** How much of {@code pending} the end-marker search has covered (reset when pending is consumed). */
  private int searchedTo;

  /** A stream for answers in {@code syntax}. */
  public ToolCallStream(Syntax syntax) {
    this.syntax = syntax;
    this.state = syntax == Syntax.HERMES ? State.CONTENT : State.UNDECIDED;
  }

  /** The events {@code delta} completes, in order. */
  public List<Event> push(String delta) {
    pending.append(delta);
    List<Event> events = new ArrayList<>();
    advance(events, false);
    return events;
  }

  /** The events left when the answer has ended: held-back text, a call that never closed (parsed as it stands). */
  public List<Event> finish() {
    List<Event> events = new ArrayList<>();
    advance(events, true);
    switch (state) {
      case CALL_ARGUMENTS -> endCall(events); // the answer ended inside the arguments: keep what came
      case CALL_HEAD, CALL_WHOLE -> {
        String block = pending.toString();
        pending.setLength(0);
        if (!parseWhole(block, events)) emitContent(events, (syntax == Syntax.HERMES ? OPEN : "") + block);
      }
      default -> {}
    }
    if (!pending.isEmpty()) {
      emitContent(events, pending.toString());
      pending.setLength(0);
    }
    state = State.CONTENT;
    return events;
  }

  /** The calls completed so far. */
  public List<Call> calls() {
    return List.copyOf(calls);
  }

  /** The content so far (outside calls). */
  public String content() {
    return content.toString();
  }

  private void advance(List<Event> events, boolean atEnd) {
    boolean progress = true;
    while (progress && !pending.isEmpty()) {
      progress = switch (state) {
        case UNDECIDED -> undecided(atEnd);
        case CONTENT -> content(events, atEnd);
        case CALL_HEAD -> head(events, atEnd);
        case CALL_ARGUMENTS -> arguments(events);
        case CALL_TAIL -> tail(events, atEnd);
        case CALL_WHOLE -> whole(events);
      };
    }
  }

  /** LLaMA JSON: the first non-space character decides whether the answer is a call or text. */
  private boolean undecided(boolean atEnd) {
    int i = 0;
    while (i < pending.length() && Character.isWhitespace(pending.charAt(i))) i++;
    if (i == pending.length()) {
      if (!atEnd) return false;
      state = State.CONTENT;
      return true;
    }
    state = pending.charAt(i) == '{' ? State.CALL_HEAD : State.CONTENT;
    return true;
  }

  private boolean content(List<Event> events, boolean atEnd) {
    if (syntax == Syntax.LLAMA_JSON) {
      emitContent(events, pending.toString());
      pending.setLength(0);
      return false;
    }
    int open = pending.indexOf(OPEN);
    if (open >= 0) {
      emitContent(events, pending.substring(0, open));
      pending.delete(0, open + OPEN.length());
      state = State.CALL_HEAD;
      return true;
    }
    int keep = atEnd ? 0 : partialSuffix(pending, OPEN);
    emitContent(events, pending.substring(0, pending.length() - keep));
    pending.delete(0, pending.length() - keep);
    return false;
  }

  private boolean head(List<Event> events, boolean atEnd) {
    // Possessive quantifiers and a bounded region: no backtracking, no recursion per character, on any model output.
    Matcher m = HEAD.matcher(pending).region(0, Math.min(pending.length(), MAX_HEAD_CHARS));
    if (m.find()) {
      callId = newId();
      callName = unescape(m.group(1));
      events.add(new CallStart(calls.size(), callId, callName));
      pending.delete(0, m.end());
      arguments.setLength(0);
      scanner.reset();
      state = State.CALL_ARGUMENTS;
      return true;
    }
    if (m.hitEnd() && pending.length() < MAX_HEAD_CHARS && !atEnd) return false; // may still match
    state = State.CALL_WHOLE;
    return true;
  }

  private boolean arguments(List<Event> events) {
    if (!scanner.started()) { // the value's leading spaces are no part of the arguments
      int i = 0;
      while (i < pending.length() && Character.isWhitespace(pending.charAt(i))) i++;
      pending.delete(0, i);
      if (pending.isEmpty()) return false;
    }
    int end = scanner.scan(pending);
    String fragment = end < 0 ? pending.toString() : pending.substring(0, end);
    pending.delete(0, fragment.length());
    if (!fragment.isEmpty()) {
      arguments.append(fragment);
      events.add(new CallArguments(calls.size(), fragment));
    }
    if (end < 0) return false;
    endCall(events);
    state = State.CALL_TAIL;
    return true;
  }

  /** After the arguments: the object's closing brace, then the block's end (HERMES) or a ';' (LLaMA). */
  private boolean tail(List<Event> events, boolean atEnd) {
    if (syntax == Syntax.HERMES) {
      int close = indexOfClose();
      if (close < 0) {
        if (atEnd) pending.setLength(0); // an unclosed block at the end: the call stands
        return false;
      }
      pending.delete(0, close + CLOSE.length());
      state = State.CONTENT;
      return true;
    }
    int separator = pending.indexOf(";");
    if (separator < 0) {
      if (atEnd) pending.setLength(0);
      return false;
    }
    pending.delete(0, separator + 1);
    state = State.UNDECIDED;
    return true;
  }

  /** A call in another key order: waits for the block's end and parses it whole. */
  private boolean whole(List<Event> events) {
    if (pending.length() > MAX_CALL_CHARS) { // too long to be a call this parser holds: the rest is text
      emitContent(events, (syntax == Syntax.HERMES ? OPEN : "") + pending);
      pending.setLength(0);
      state = State.CONTENT;
      return false;
    }
    if (syntax == Syntax.LLAMA_JSON) return false; // the whole answer is the block: parsed in finish()
    int close = indexOfClose();
    if (close < 0) return false;
    String block = pending.substring(0, close);
    pending.delete(0, close + CLOSE.length());
    if (!parseWhole(block, events)) emitContent(events, OPEN + block + CLOSE);
    state = State.CONTENT;
    return true;
  }

  /** Parses {@code block} as one call object; false when it is not one. */
  private boolean parseWhole(String block, List<Event> events) {
    com.fasterxml.jackson.databind.JsonNode node;
    try {
      node = JSON.readTree(block.strip());
    } catch (java.io.IOException e) {
      return false;
    }
    if (node == null || !node.isObject() || !node.path("name").isTextual()) return false;
    com.fasterxml.jackson.databind.JsonNode args = node.has("arguments") ? node.get("arguments") : node.get("parameters");
    callId = newId();
    callName = node.get("name").asText();
    events.add(new CallStart(calls.size(), callId, callName));
    String text = args == null ? "{}" : args.isTextual() ? args.asText() : args.toString();
    arguments.setLength(0);
    arguments.append(text);
    events.add(new CallArguments(calls.size(), text));
    endCall(events);
    return true;
  }

  private void endCall(List<Event> events) {
    calls.add(new Call(callId, callName, arguments.toString()));
    arguments.setLength(0);
  }

  private void emitContent(List<Event> events, String text) {
    if (text.isEmpty()) return;
    content.append(text);
    events.add(new Content(text));
  }

  /**
   * Where the block's end marker is in {@code pending}, or -1; searches only what arrived since the last search (less
   * the marker's length), so a long unclosed block costs linear time, not quadratic.
   */
  private int indexOfClose() {
    int close = pending.indexOf(CLOSE, Math.max(0, searchedTo - CLOSE.length()));
    searchedTo = close < 0 ? pending.length() : 0;
    return close;
  }

  /** Length of the longest suffix of {@code text} that is a proper prefix of {@code marker}. */
  private static int partialSuffix(CharSequence text, String marker) {
    for (int n = Math.min(marker.length() - 1, text.length()); n > 0; n--) {
      boolean match = true;
      for (int k = 0; k < n && match; k++) match = text.charAt(text.length() - n + k) == marker.charAt(k);
      if (match) return n;
    }
    return 0;
  }

  private static String unescape(String jsonStringBody) {
    try {
      return JSON.readValue("\"" + jsonStringBody + "\"", String.class);
    } catch (java.io.IOException e) {
      return jsonStringBody;
    }
  }

  /** An OpenAI-style call id: {@code call_} and 24 random letters and digits. */
  static String newId() {
    String alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    StringBuilder id = new StringBuilder("call_");
    ThreadLocalRandom random = ThreadLocalRandom.current();
    for (int i = 0; i < 24; i++) id.append(alphabet.charAt(random.nextInt(alphabet.length())));
    return id.toString();
  }

  private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

  /** Finds where one JSON value ends in text that arrives in pieces: tracks nesting, strings and escapes. */
  static final class JsonValueScanner {
    private int depth;
    private boolean inString;
    private boolean escaped;
    private boolean started;
    private boolean scalar;

    boolean started() {
      return started;
    }

    void reset() {
      depth = 0;
      inString = false;
      escaped = false;
      started = false;
      scalar = false;
    }

    /**
     * Consumes {@code text}; returns the index just past the value's end, or -1 when the value goes on. A bare
     * scalar (a string, number or literal) ends at its last character; containers at their closing bracket.
     */
    int scan(CharSequence text) {
      for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i);
        if (!started) {
          if (Character.isWhitespace(c)) continue;
          started = true;
          if (c == '{' || c == '[') {
            depth = 1;
          } else if (c == '"') {
            inString = true;
            scalar = true;
          } else {
            scalar = true;
          }
          continue;
        }
        if (inString) {
          if (escaped) {
            escaped = false;
          } else if (c == '\\') {
            escaped = true;
          } else if (c == '"') {
            inString = false;
            if (scalar) return i + 1;
          }
          continue;
        }
        if (scalar) { // number or literal: ends before a delimiter
          if (c == ',' || c == '}' || c == ']' || Character.isWhitespace(c)) return i;
          continue;
        }
        switch (c) {
          case '"' -> inString = true;
          case '{', '[' -> depth++;
          case '}', ']' -> {
            if (--depth == 0) return i + 1;
          }
          default -> {}
        }
      }
      return -1;
    }
  }
}
