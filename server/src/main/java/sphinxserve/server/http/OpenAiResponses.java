package sphinxserve.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.TokenLogprobs;
import dev.sphinxserve.proto.v1.TopLogprob;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import io.netty.handler.codec.http.HttpResponseStatus;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import sphinxserve.api.TextTokenizer;
import sphinxserve.server.generate.ToolCallStream;

/**
 * The node's {@link GenerateResponse}s in OpenAI's shapes: {@code chat.completion} (one body),
 * {@code chat.completion.chunk} (Server-Sent Events), the {@code text_completion} equivalents with the completions
 * log-probability shape ({@code tokens, token_logprobs, top_logprobs, text_offset}), errors as
 * {@code {"error": {"message", "type", "param", "code"}}} with the HTTP status a gRPC status maps to.
 *
 * <p>Tool calls: when a chat request offers tools it may call ({@link OpenAiRequests.Parsed#toolCallSyntax}), each
 * choice's text goes through its own {@link ToolCallStream}: the whole answer's calls become {@code message.tool_calls}
 * ({@code content} null when the answer is only calls, {@code finish_reason} {@code tool_calls}); streamed, text
 * becomes {@code delta.content} and a call {@code delta.tool_calls}: first {@code [{index, id, type, function: {name,
 * arguments}}]}, then {@code [{index, function: {arguments: <the next fragment>}}]}. Content that is only white space
 * is held back until other content follows, so streamed deltas assemble to what the whole body says.
 *
 * <p>One instance per HTTP request. Calls for one choice come from one thread at a time, in the choice's order
 * (streamed text offsets carry from one chunk to the next); different choices may be formatted concurrently.
 */
final class OpenAiResponses {

  public static final ObjectMapper JSON = new ObjectMapper();

  /** What a log-probability below this is written as (JSON has no -Infinity; vLLM's floor). */
  static final float MIN_LOGPROB = -9999f;

  /** Which endpoint's shapes. */
  public enum Kind {
    CHAT("chat.completion", "chat.completion.chunk", "chatcmpl-"),
    COMPLETION("text_completion", "text_completion", "cmpl-");

    final String object;
    final String chunkObject;
    final String idPrefix;

    Kind(String object, String chunkObject, String idPrefix) {
      this.object = object;
      this.chunkObject = chunkObject;
      this.idPrefix = idPrefix;
    }
  }

  /**
   * One choice's whole answer, for {@link #complete}.
   *
   * @param index the choice's index
   * @param text the generated text ({@link #complete} puts an echoed prompt before it)
   * @param reason how it ended: {@code STOP} or {@code LENGTH}
   * @param logprobs per generated token, empty when not asked for
   */
  record ChoiceResult(int index, String text, FinishReason reason, List<TokenLogprobs> logprobs) {}

  private final Kind kind;
  private final String id;
  private final String model;
  private final long created = System.currentTimeMillis() / 1000;
  private final TextTokenizer tokenizer;
  private final OpenAiRequests.Parsed request;
  /** Per choice while streaming completions: where the next token's text starts. */
  private final TextOffsets[] streamOffsets;
  /** Per choice while streaming a chat answer that may call tools: its parser; null otherwise. */
  private final StreamedCalls[] streamedCalls;

  OpenAiResponses(Kind kind, String requestId, String model, TextTokenizer tokenizer, OpenAiRequests.Parsed request) {
    this.kind = kind;
    this.id = kind.idPrefix + requestId;
    this.model = model;
    this.tokenizer = tokenizer;
    this.request = request;
    this.streamOffsets = new TextOffsets[request.choices().size()];
    this.streamedCalls = new StreamedCalls[request.choices().size()];
  }

  /**
   * OpenAI's finish reason for the node's: {@code stop}, {@code length} or {@code tool_calls}; null while not
   * finished, and for {@code ABORTED} and {@code DEADLINE}, which are not finishes but errors the transport reports as
   * such.
   */
  public static String finishReason(FinishReason reason) {
    return switch (reason) {
      case STOP -> "stop";
      case LENGTH -> "length";
      case TOOL_CALLS -> "tool_calls";
      default -> null;
    };
  }

  /**
   * The finish reason of an answer whose text made {@code calls}: {@code tool_calls} when it ended at its end (not
   * cut at the length limit) having made some, else the node's reason.
   */
  private static String finishReason(FinishReason reason, List<ToolCallStream.Call> calls) {
    boolean ended = reason == FinishReason.STOP || reason == FinishReason.TOOL_CALLS;
    if (ended) return calls.isEmpty() ? "stop" : "tool_calls";
    return finishReason(reason);
  }

  /**
   * {@code status} in the terms of this request's body ({@link OpenAiRequests.Parsed#inHttpTerms}): the transport
   * applies it to a status failing the request before {@link #error}, so {@code param} names the field sent.
   */
  public Status inHttpTerms(Status status) {
    return request.inHttpTerms(status);
  }

  /**
   * One streamed chunk for choice {@code index}'s response {@code r}. The choice's first chunk carries the chat role,
   * or a completion's echoed prompt; the last (finish reason set, no text) has the empty delta {@code {}}.
   */
  public ObjectNode chunk(int index, GenerateResponse r, boolean firstOfChoice) {
    ObjectNode chunk = head(kind.chunkObject);
    ObjectNode choice = chunk.putArray("choices").addObject().put("index", index);
    String echo = firstOfChoice ? echoText(index) : null;
    boolean last = r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED;
    String finish = finishReason(r.getFinishReason());
    if (kind == Kind.CHAT && request.toolCallSyntax() != null) {
      if (streamedCalls[index] == null) streamedCalls[index] = new StreamedCalls(request.toolCallSyntax());
      StreamedCalls calls = streamedCalls[index];
      calls.delta(choice.putObject("delta"), r.getText(), last, firstOfChoice);
      if (last) finish = finishReason(r.getFinishReason(), calls.parser.calls());
    } else if (kind == Kind.CHAT) {
      ObjectNode delta = choice.putObject("delta");
      if (firstOfChoice) delta.put("role", "assistant").put("content", r.getText());
      else if (!r.getText().isEmpty()) delta.put("content", r.getText());
    } else {
      choice.put("text", echo == null ? r.getText() : echo + r.getText());
    }
    if (r.getLogprobsCount() == 0) {
      choice.putNull("logprobs");
    } else if (kind == Kind.CHAT) {
      chatLogprobs(choice, r.getLogprobsList());
    } else {
      if (streamOffsets[index] == null) streamOffsets[index] = new TextOffsets(echoLength(index));
      completionLogprobs(choice, r.getLogprobsList(), streamOffsets[index]);
    }
    if (finish == null) choice.putNull("finish_reason"); else choice.put("finish_reason", finish);
    if (request.includeUsage()) chunk.putNull("usage");
    return chunk;
  }

  /** The last streamed chunk when {@code stream_options.include_usage} asks for it: no choices, the request's usage. */
  public ObjectNode usageChunk(Usage total) {
    ObjectNode chunk = head(kind.chunkObject);
    chunk.putArray("choices");
    usage(chunk, total);
    return chunk;
  }

  /** The whole answer as one body: every choice in index order and the request's usage. */
  public ObjectNode complete(List<ChoiceResult> results, Usage total) {
    ObjectNode body = head(kind.object);
    ArrayNode choices = body.putArray("choices");
    for (ChoiceResult result : results.stream().sorted(Comparator.comparingInt(ChoiceResult::index)).toList()) {
      ObjectNode choice = choices.addObject().put("index", result.index());
      String echo = echoText(result.index());
      String finish = finishReason(result.reason());
      if (kind == Kind.CHAT && request.toolCallSyntax() != null) {
        finish = message(choice.putObject("message"), result);
      } else if (kind == Kind.CHAT) {
        choice.putObject("message").put("role", "assistant").put("content", result.text());
      } else {
        choice.put("text", echo == null ? result.text() : echo + result.text());
      }
      if (result.logprobs().isEmpty()) {
        choice.putNull("logprobs");
      } else if (kind == Kind.CHAT) {
        chatLogprobs(choice, result.logprobs());
      } else {
        completionLogprobs(choice, result.logprobs(), new TextOffsets(echoLength(result.index())));
      }
      choice.put("finish_reason", finish);
    }
    usage(body, total);
    return body;
  }

  /**
   * A whole chat answer that may call tools as {@code message}: its content (null when it is only calls) and
   * {@code tool_calls}; returns its finish reason.
   */
  private String message(ObjectNode message, ChoiceResult result) {
    ToolCallStream parser = new ToolCallStream(request.toolCallSyntax());
    parser.push(result.text());
    parser.finish();
    List<ToolCallStream.Call> calls = parser.calls();
    message.put("role", "assistant");
    if (!calls.isEmpty() && parser.content().isBlank()) message.putNull("content"); else message.put("content", parser.content());
    if (!calls.isEmpty()) {
      ArrayNode toolCalls = message.putArray("tool_calls");
      for (ToolCallStream.Call call : calls) {
        ObjectNode entry = toolCalls.addObject().put("id", call.id()).put("type", "function");
        entry.putObject("function").put("name", call.name()).put("arguments", call.arguments());
      }
    }
    return finishReason(result.reason(), calls);
  }

  /** One streamed chat answer's tool-call parser and what its deltas have shown. */
  private static final class StreamedCalls {
    final ToolCallStream parser;
    /** White space seen before any other content: shown once other content follows, dropped if only calls do. */
    final StringBuilder heldSpace = new StringBuilder();
    boolean contentShown;

    StreamedCalls(ToolCallStream.Syntax syntax) {
      this.parser = new ToolCallStream(syntax);
    }

    /** Fills {@code delta} with what {@code text} (and, when {@code last}, the answer's end) completes. */
    void delta(ObjectNode delta, String text, boolean last, boolean first) {
      List<ToolCallStream.Event> events = new ArrayList<>(parser.push(text));
      if (last) events.addAll(parser.finish());
      StringBuilder content = new StringBuilder();
      Map<Integer, ObjectNode> calls = new LinkedHashMap<>();
      for (ToolCallStream.Event event : events) {
        switch (event) {
          case ToolCallStream.Content c -> {
            if (!contentShown && c.text().isBlank()) {
              heldSpace.append(c.text());
            } else {
              content.append(heldSpace).append(c.text());
              heldSpace.setLength(0);
              contentShown = true;
            }
          }
          case ToolCallStream.CallStart start -> {
            ObjectNode entry = JSON.createObjectNode().put("index", start.index()).put("id", start.id()).put("type", "function");
            entry.putObject("function").put("name", start.name()).put("arguments", "");
            calls.put(start.index(), entry);
          }
          case ToolCallStream.CallArguments arguments -> {
            ObjectNode entry = calls.computeIfAbsent(arguments.index(), i -> {
              ObjectNode e = JSON.createObjectNode().put("index", i);
              e.putObject("function").put("arguments", "");
              return e;
            });
            ObjectNode function = (ObjectNode) entry.get("function");
            function.put("arguments", function.get("arguments").asText() + arguments.fragment());
          }
        }
      }
      if (last && !heldSpace.isEmpty() && parser.calls().isEmpty()) content.append(heldSpace); // the answer was only white space
      if (first) delta.put("role", "assistant");
      if (!content.isEmpty()) {
        delta.put("content", content.toString());
      } else if (first) {
        if (calls.isEmpty()) delta.put("content", ""); else delta.putNull("content");
      }
      if (!calls.isEmpty()) delta.putArray("tool_calls").addAll(calls.values());
    }
  }

  /**
   * The request's usage from its choices' ({@code perChoice.get(i)} is choice i's): each distinct prompt's tokens
   * counted once (its first choice's, cached tokens too), the generated tokens of every choice summed.
   */
  public Usage totalUsage(List<Usage> perChoice) {
    Usage.Builder total = Usage.newBuilder();
    int n = request.n();
    long completion = 0;
    for (int i = 0; i < perChoice.size(); i++) {
      Usage u = perChoice.get(i);
      completion += u.getCompletionTokens();
      if (i % n == 0) {
        total.setPromptTokens(total.getPromptTokens() + u.getPromptTokens())
            .setCachedPromptTokens(total.getCachedPromptTokens() + u.getCachedPromptTokens())
            .setImageTokens(total.getImageTokens() + u.getImageTokens())
            .setImageCacheHit(u.getImageCacheHit());
      }
    }
    return total.setCompletionTokens((int) Math.min(Integer.MAX_VALUE, completion)).build();
  }

  private String echoText(int index) {
    return index < request.choices().size() ? request.choices().get(index).echoText() : null;
  }

  private int echoLength(int index) {
    String echo = echoText(index);
    return echo == null ? 0 : echo.length();
  }

  private ObjectNode head(String object) {
    ObjectNode node = JSON.createObjectNode();
    node.put("id", id).put("object", object).put("created", created).put("model", model);
    return node;
  }

  private static void usage(ObjectNode node, Usage u) {
    ObjectNode usage = node.putObject("usage").put("prompt_tokens", u.getPromptTokens())
        .put("completion_tokens", u.getCompletionTokens()).put("total_tokens", (long) u.getPromptTokens() + u.getCompletionTokens());
    usage.putObject("prompt_tokens_details").put("cached_tokens", u.getCachedPromptTokens());
  }

  /** Chat's logprobs: {@code {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}}. */
  private void chatLogprobs(ObjectNode choice, List<TokenLogprobs> logprobs) {
    ArrayNode content = choice.putObject("logprobs").putArray("content");
    for (TokenLogprobs l : logprobs) {
      ObjectNode entry = token(content.addObject(), l.getTokenId()).put("logprob", logprob(l.getLogprob()));
      ArrayNode top = entry.putArray("top_logprobs");
      for (int i = 0; i < Math.min(request.topLogprobs(), l.getTopCount()); i++) {
        TopLogprob t = l.getTop(i);
        token(top.addObject(), t.getTokenId()).put("logprob", logprob(t.getLogprob()));
      }
    }
  }

  /**
   * Completions' logprobs: {@code {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}}; each
   * {@code top_logprobs} entry holds the {@code logprobs} most likely tokens and the chosen one (OpenAI: "up to
   * logprobs + 1 elements").
   */
  private void completionLogprobs(ObjectNode choice, List<TokenLogprobs> logprobs, TextOffsets offsets) {
    ObjectNode out = choice.putObject("logprobs");
    ArrayNode tokens = out.putArray("tokens");
    ArrayNode tokenLogprobs = out.putArray("token_logprobs");
    ArrayNode topLogprobs = out.putArray("top_logprobs");
    ArrayNode textOffset = out.putArray("text_offset");
    for (TokenLogprobs l : logprobs) {
      byte[] bytes = tokenizer.tokenBytes(l.getTokenId());
      String text = completionToken(bytes);
      tokens.add(text);
      tokenLogprobs.add(logprob(l.getLogprob()));
      textOffset.add(offsets.next(bytes));
      ObjectNode top = topLogprobs.addObject();
      top.put(text, logprob(l.getLogprob()));
      for (int i = 0; i < Math.min(request.topLogprobs(), l.getTopCount()); i++) {
        TopLogprob t = l.getTop(i);
        String alternative = tokenText(t.getTokenId());
        if (!top.has(alternative)) top.put(alternative, logprob(t.getLogprob()));
      }
    }
  }

  private static float logprob(float value) {
    return Math.max(value, MIN_LOGPROB); // also turns NaN into the floor
  }

  private String tokenText(int id) {
    return completionToken(tokenizer.tokenBytes(id));
  }

  /**
   * A token as completions' {@code tokens} and {@code top_logprobs} keys write it: its text, or, when its bytes are not
   * whole UTF-8 characters (a byte-level piece of one), OpenAI's {@code "bytes:\xe2\x80"} form, so distinct pieces
   * never collapse into one U+FFFD key.
   */
  static String completionToken(byte[] bytes) {
    try {
      return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
    } catch (CharacterCodingException e) {
      StringBuilder sb = new StringBuilder("bytes:");
      for (byte b : bytes) sb.append(String.format("\\x%02x", b & 0xff));
      return sb.toString();
    }
  }

  /** {@code token} (the token's text) and {@code bytes} (its UTF-8 bytes) of {@code id}. */
  private ObjectNode token(ObjectNode node, int id) {
    byte[] bytes = tokenizer.tokenBytes(id);
    node.put("token", new String(bytes, StandardCharsets.UTF_8));
    ArrayNode array = node.putArray("bytes");
    for (byte b : bytes) array.add(b & 0xff);
    return node;
  }

  /** The HTTP status of a gRPC status (OpenAI's: 400, 401, 403, 404, 429, 500, 503, 504). */
  static HttpResponseStatus httpStatus(Status.Code code) {
    return switch (code) {
      case INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION -> HttpResponseStatus.BAD_REQUEST;
      case UNAUTHENTICATED -> HttpResponseStatus.UNAUTHORIZED;
      case PERMISSION_DENIED -> HttpResponseStatus.FORBIDDEN;
      case NOT_FOUND -> HttpResponseStatus.NOT_FOUND;
      case RESOURCE_EXHAUSTED -> HttpResponseStatus.TOO_MANY_REQUESTS;
      case UNAVAILABLE -> HttpResponseStatus.SERVICE_UNAVAILABLE;
      case DEADLINE_EXCEEDED -> HttpResponseStatus.GATEWAY_TIMEOUT;
      case CANCELLED -> HttpResponseStatus.valueOf(499, "Client Closed Request");
      default -> HttpResponseStatus.INTERNAL_SERVER_ERROR;
    };
  }

  /**
   * OpenAI's error body for {@code status}; {@code param} is the field a validation message starts with, in the
   * HTTP body's terms: {@code "sampling.temperature: must be ..."} → {@code temperature},
   * {@code sampling.logit_bias.7} → {@code logit_bias.7}, {@code prompt_token_ids[3]} (a completion's tokenized
   * prompt) → {@code prompt[3]}.
   */
  public static ObjectNode error(Status status) {
    String message = status.getDescription() == null ? status.getCode().name() : status.getDescription();
    String param = null;
    int colon = message.indexOf(": ");
    boolean fieldError = status.getCode() == Status.Code.INVALID_ARGUMENT || status.getCode() == Status.Code.NOT_FOUND;
    if (fieldError && colon > 0 && !message.substring(0, colon).contains(" ")) {
      param = message.substring(0, colon).replaceFirst("^sampling\\.", "");
      param = param.replaceFirst("^prompt_token_ids", "prompt");
    }
    ObjectNode body = JSON.createObjectNode();
    ObjectNode error = body.putObject("error").put("message", message).put("type", switch (status.getCode()) {
      case INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION, NOT_FOUND -> "invalid_request_error";
      case UNAUTHENTICATED -> "authentication_error";
      case PERMISSION_DENIED -> "permission_error";
      case RESOURCE_EXHAUSTED -> "rate_limit_error";
      default -> "server_error";
    });
    if (param == null) error.putNull("param"); else error.put("param", param);
    error.put("code", "model".equals(param) && status.getCode() == Status.Code.NOT_FOUND ? "model_not_found"
        : status.getCode().name().toLowerCase(java.util.Locale.ROOT));
    return body;
  }
}
