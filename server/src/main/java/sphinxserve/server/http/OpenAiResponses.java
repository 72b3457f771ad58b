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
import java.nio.charset.StandardCharsets;
import sphinxserve.api.TextTokenizer;

/**
 * The node's {@link GenerateResponse} stream in OpenAI's shapes: {@code chat.completion} (one body),
 * {@code chat.completion.chunk} (Server-Sent Events), the {@code text_completion} equivalents, errors as
 * {@code {"error": {"message", "type", "param", "code"}}} with the HTTP status a gRPC status maps to.
 */
final class OpenAiResponses {

  public static final ObjectMapper JSON = new ObjectMapper();

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

  private final Kind kind;
  private final String id;
  private final String model;
  private final long created = System.currentTimeMillis() / 1000;
  private final TextTokenizer tokenizer;
  private final int topLogprobs;

  OpenAiResponses(Kind kind, String requestId, String model, TextTokenizer tokenizer, int topLogprobs) {
    this.kind = kind;
    this.id = kind.idPrefix + requestId;
    this.model = model;
    this.tokenizer = tokenizer;
    this.topLogprobs = topLogprobs;
  }

  /** OpenAI's finish reason for the node's; null while not finished. */
  public static String finishReason(FinishReason reason) {
    return switch (reason) {
      case STOP -> "stop";
      case LENGTH, DEADLINE -> "length";
      case ABORTED -> "abort";
      default -> null;
    };
  }

  /** One streamed chunk for {@code r} ({@code first}: the chat delta carries the role). */
  public ObjectNode chunk(GenerateResponse r, boolean first) {
    ObjectNode chunk = head(kind.chunkObject);
    ObjectNode choice = chunk.putArray("choices").addObject().put("index", 0);
    if (kind == Kind.CHAT) {
      ObjectNode delta = choice.putObject("delta");
      if (first) delta.put("role", "assistant");
      if (!r.getText().isEmpty() || !first) delta.put("content", r.getText());
    } else {
      choice.put("text", r.getText());
    }
    if (r.getLogprobsCount() > 0) logprobs(choice, r); else choice.putNull("logprobs");
    String finish = finishReason(r.getFinishReason());
    if (finish == null) choice.putNull("finish_reason"); else choice.put("finish_reason", finish);
    return chunk;
  }

  /** The last streamed chunk when usage is asked for: no choices, the usage. */
  ObjectNode usageChunk(Usage usage) {
    ObjectNode chunk = head(kind.chunkObject);
    chunk.putArray("choices");
    usage(chunk, usage);
    return chunk;
  }

  /** The whole answer as one body. */
  public ObjectNode complete(String text, FinishReason reason, Usage usage, java.util.List<TokenLogprobs> logprobs) {
    ObjectNode body = head(kind.object);
    ObjectNode choice = body.putArray("choices").addObject().put("index", 0);
    if (kind == Kind.CHAT) {
      choice.putObject("message").put("role", "assistant").put("content", text);
    } else {
      choice.put("text", text);
    }
    if (logprobs.isEmpty()) choice.putNull("logprobs"); else logprobs(choice, GenerateResponse.newBuilder().addAllLogprobs(logprobs).build());
    choice.put("finish_reason", finishReason(reason));
    usage(body, usage);
    return body;
  }

  private ObjectNode head(String object) {
    ObjectNode node = JSON.createObjectNode();
    node.put("id", id).put("object", object).put("created", created).put("model", model);
    return node;
  }

  private static void usage(ObjectNode node, Usage u) {
    ObjectNode usage = node.putObject("usage").put("prompt_tokens", u.getPromptTokens())
        .put("completion_tokens", u.getCompletionTokens()).put("total_tokens", u.getPromptTokens() + u.getCompletionTokens());
    usage.putObject("prompt_tokens_details").put("cached_tokens", u.getCachedPromptTokens());
  }

  /** OpenAI's chat logprobs: {@code {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}}. */
  private void logprobs(ObjectNode choice, GenerateResponse r) {
    ArrayNode content = choice.putObject("logprobs").putArray("content");
    for (TokenLogprobs l : r.getLogprobsList()) {
      ObjectNode entry = token(content.addObject(), l.getTokenId()).put("logprob", l.getLogprob());
      ArrayNode top = entry.putArray("top_logprobs");
      for (int i = 0; i < Math.min(topLogprobs, l.getTopCount()); i++) {
        TopLogprob t = l.getTop(i);
        token(top.addObject(), t.getTokenId()).put("logprob", t.getLogprob());
      }
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
   * OpenAI's error body for {@code status}; {@code param} is the field a validation message starts with
   * ({@code "sampling.temperature: must be ..."} → {@code temperature}).
   */
  public static ObjectNode error(Status status) {
    String message = status.getDescription() == null ? status.getCode().name() : status.getDescription();
    String param = null;
    int colon = message.indexOf(": ");
    boolean fieldError = status.getCode() == Status.Code.INVALID_ARGUMENT || status.getCode() == Status.Code.NOT_FOUND;
    if (fieldError && colon > 0 && !message.substring(0, colon).contains(" ")) {
      param = message.substring(0, colon).replaceFirst("^sampling\\.", "");
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
