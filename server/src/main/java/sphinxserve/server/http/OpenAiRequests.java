package sphinxserve.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import java.util.Base64;
import java.util.Set;
import sphinxserve.server.generate.RequestException;

/**
 * OpenAI's request bodies ({@code /v1/chat/completions}, {@code /v1/completions}) as {@link GenerateRequest}s: the
 * HTTP API is a translation onto the gRPC request, so both take one path ({@code GenerateCalls}) with the same
 * validation, limits and caches. What OpenAI lacks comes as vLLM's extra fields ({@code top_k}, {@code min_p},
 * {@code repetition_penalty}, {@code min_tokens}, {@code ignore_eos}). Errors name the field in OpenAI's
 * {@code param} form ({@code messages[0].content[1].image_url.url}).
 */
final class OpenAiRequests {

  /**
   * A translated request and what the response needs that the gRPC request does not carry.
   *
   * @param stream Server-Sent Events instead of one JSON body
   * @param includeUsage {@code stream_options.include_usage}: a last chunk with the usage
   * @param logprobs whether to return log-probabilities
   * @param topLogprobs alternatives per position (0..20)
   */
  record Parsed(GenerateRequest request, boolean stream, boolean includeUsage, boolean logprobs, int topLogprobs) {}

  /** Fields whose presence asks for what the node does not do; refused rather than silently ignored. */
  private static final Set<String> UNSUPPORTED = Set.of("tools", "functions", "function_call", "audio", "prediction");

  private OpenAiRequests() {}

  /** A {@code /v1/chat/completions} body. */
  public static Parsed chat(JsonNode body, String requestId) {
    JsonNode messages = body.get("messages");
    if (messages == null || !messages.isArray() || messages.isEmpty()) throw invalid("messages", "must be a non-empty array of messages");
    GenerateRequest.Builder request = GenerateRequest.newBuilder().setRequestId(requestId);
    for (int i = 0; i < messages.size(); i++) request.addMessages(message(messages.get(i), "messages[" + i + "]"));
    return finish(body, request);
  }

  /**
   * A {@code /v1/completions} body: a string prompt is one user turn rendered with the model's template; an array of
   * token ids is the prompt as it is (no template, no BOS), as OpenAI and vLLM take it.
   */
  static Parsed completion(JsonNode body, String requestId) {
    JsonNode prompt = body.get("prompt");
    GenerateRequest.Builder request = GenerateRequest.newBuilder().setRequestId(requestId);
    if (prompt != null && prompt.isTextual()) {
      request.addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText(prompt.asText())));
    } else if (prompt != null && prompt.isArray() && !prompt.isEmpty() && prompt.get(0).canConvertToExactIntegral()) {
      for (int i = 0; i < prompt.size(); i++) {
        JsonNode id = prompt.get(i);
        if (!id.canConvertToExactIntegral() || !id.canConvertToInt() || id.asInt() < 0) throw invalid("prompt[" + i + "]", "must be a token id");
        request.addPromptTokenIds(id.asInt());
      }
    } else {
      throw invalid("prompt", "must be a string or an array of token ids (several prompts per request are not supported)");
    }
    return finish(body, request);
  }

  private static Parsed finish(JsonNode body, GenerateRequest.Builder request) {
    for (String field : UNSUPPORTED) {
      if (body.hasNonNull(field)) throw invalid(field, "is not supported by this node");
    }
    JsonNode format = body.get("response_format");
    if (format != null && !format.isNull() && !"text".equals(format.path("type").asText())) {
      throw invalid("response_format", "only {\"type\": \"text\"} is supported");
    }
    int n = intField(body, "n", 1);
    if (n != 1) throw invalid("n", "must be 1 (one choice per request), got " + n);
    SamplingParams.Builder s = SamplingParams.newBuilder();
    JsonNode maxTokens = body.hasNonNull("max_completion_tokens") ? body.get("max_completion_tokens") : body.get("max_tokens");
    String maxTokensField = body.hasNonNull("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (maxTokens != null && !maxTokens.isNull()) {
      int value = intValue(maxTokens, maxTokensField);
      if (value < 1) throw invalid(maxTokensField, "must be at least 1, got " + value);
      s.setMaxTokens(value);
    }
    // OpenAI's default temperature is 1 (sampling); the gRPC API's 0 means greedy, so say it explicitly.
    s.setTemperature((float) doubleField(body, "temperature", 1.0));
    if (body.hasNonNull("top_p")) s.setTopP((float) doubleField(body, "top_p", 1.0));
    if (body.hasNonNull("top_k")) s.setTopK(Math.max(0, intField(body, "top_k", 0))); // vLLM: -1 means off
    if (body.hasNonNull("min_p")) s.setMinP((float) doubleField(body, "min_p", 0));
    if (body.hasNonNull("repetition_penalty")) s.setRepetitionPenalty((float) doubleField(body, "repetition_penalty", 1));
    if (body.hasNonNull("presence_penalty")) s.setPresencePenalty((float) doubleField(body, "presence_penalty", 0));
    if (body.hasNonNull("frequency_penalty")) s.setFrequencyPenalty((float) doubleField(body, "frequency_penalty", 0));
    if (body.hasNonNull("seed")) {
      JsonNode seed = body.get("seed");
      if (!seed.canConvertToExactIntegral() || !seed.canConvertToLong()) throw invalid("seed", "must be an integer");
      s.setSeed(seed.asLong());
    }
    JsonNode stop = body.get("stop");
    if (stop != null && !stop.isNull()) {
      if (stop.isTextual()) {
        s.addStop(stop.asText());
      } else if (stop.isArray()) {
        for (int i = 0; i < stop.size(); i++) {
          if (!stop.get(i).isTextual()) throw invalid("stop[" + i + "]", "must be a string");
          s.addStop(stop.get(i).asText());
        }
      } else {
        throw invalid("stop", "must be a string or an array of strings");
      }
    }
    if (body.hasNonNull("min_tokens")) s.setMinTokens(intField(body, "min_tokens", 0));
    if (body.hasNonNull("ignore_eos")) s.setIgnoreEos(booleanField(body, "ignore_eos"));
    boolean logprobs = body.hasNonNull("logprobs") && booleanOrCount(body);
    int topLogprobs = intField(body, "top_logprobs", 0);
    if (topLogprobs < 0 || topLogprobs > 20) throw invalid("top_logprobs", "must be in 0..20, got " + topLogprobs);
    if (topLogprobs > 0 && !logprobs) throw invalid("top_logprobs", "needs logprobs: true");
    if (logprobs) s.setLogprobs(Math.max(1, topLogprobs)); // the gRPC API returns the chosen token's with any count > 0
    boolean stream = body.hasNonNull("stream") && booleanField(body, "stream");
    JsonNode options = body.get("stream_options");
    boolean includeUsage = false;
    if (options != null && !options.isNull()) {
      if (!stream) throw invalid("stream_options", "is only allowed with stream: true");
      includeUsage = options.hasNonNull("include_usage") && booleanField(options, "include_usage", "stream_options.include_usage");
    }
    return new Parsed(request.setSampling(s).build(), stream, includeUsage, logprobs, topLogprobs);
  }

  /** {@code /v1/completions}' {@code logprobs} is a count; chat's is a boolean. */
  private static boolean booleanOrCount(JsonNode body) {
    JsonNode v = body.get("logprobs");
    if (v.isBoolean()) return v.asBoolean();
    if (v.canConvertToExactIntegral()) return v.asInt() > 0;
    throw invalid("logprobs", "must be true or false");
  }

  private static Message message(JsonNode m, String field) {
    if (!m.isObject()) throw invalid(field, "must be an object with role and content");
    String role = m.path("role").asText("");
    Role r = switch (role) {
      case "system", "developer" -> Role.SYSTEM;
      case "user" -> Role.USER;
      case "assistant" -> Role.ASSISTANT;
      default -> throw invalid(field + ".role", "must be system, developer, user or assistant, got '" + role + "'");
    };
    Message.Builder out = Message.newBuilder().setRole(r);
    JsonNode content = m.get("content");
    if (content == null || content.isNull()) throw invalid(field + ".content", "is required");
    if (content.isTextual()) return out.addContent(Content.newBuilder().setText(content.asText())).build();
    if (!content.isArray()) throw invalid(field + ".content", "must be a string or an array of content parts");
    for (int j = 0; j < content.size(); j++) {
      JsonNode part = content.get(j);
      String pf = field + ".content[" + j + "]";
      String type = part.path("type").asText("");
      switch (type) {
        case "text" -> {
          if (!part.path("text").isTextual()) throw invalid(pf + ".text", "must be a string");
          out.addContent(Content.newBuilder().setText(part.get("text").asText()));
        }
        case "image_url" -> {
          JsonNode url = part.path("image_url");
          String value = url.isTextual() ? url.asText() : url.path("url").asText(null);
          if (value == null) throw invalid(pf + ".image_url.url", "is required");
          out.addContent(Content.newBuilder().setImage(ByteString.copyFrom(dataUrl(value, pf + ".image_url.url"))));
        }
        default -> throw invalid(pf + ".type", "must be text or image_url, got '" + type + "'");
      }
    }
    return out.build();
  }

  /** The bytes of a {@code data:[type];base64,...} URL; anything else is refused, since the node fetches nothing. */
  static byte[] dataUrl(String url, String field) {
    if (url.startsWith("http://") || url.startsWith("https://")) {
      throw invalid(field, "the node fetches nothing from the network: send the image inline as a data: URL (data:image/png;base64,...)");
    }
    int comma = url.indexOf(',');
    if (!url.startsWith("data:") || comma < 0 || !url.substring(0, comma).endsWith(";base64")) {
      throw invalid(field, "must be a base64 data: URL (data:image/png;base64,...)");
    }
    try {
      return Base64.getMimeDecoder().decode(url.substring(comma + 1));
    } catch (IllegalArgumentException e) {
      throw invalid(field, "is not valid base64: " + e.getMessage());
    }
  }

  private static int intField(JsonNode body, String field, int fallback) {
    JsonNode v = body.get(field);
    return v == null || v.isNull() ? fallback : intValue(v, field);
  }

  private static int intValue(JsonNode v, String field) {
    if (!v.canConvertToExactIntegral() || !v.canConvertToInt()) throw invalid(field, "must be an integer, got " + v);
    return v.asInt();
  }

  private static double doubleField(JsonNode body, String field, double fallback) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) return fallback;
    if (!v.isNumber()) throw invalid(field, "must be a number, got " + v);
    return v.asDouble();
  }

  private static boolean booleanField(JsonNode body, String field) {
    return booleanField(body, field, field);
  }

  private static boolean booleanField(JsonNode body, String field, String name) {
    JsonNode v = body.get(field);
    if (!v.isBoolean()) throw invalid(name, "must be true or false, got " + v);
    return v.asBoolean();
  }

  private static RequestException invalid(String field, String problem) {
    return RequestException.invalid(field, problem);
  }
}
