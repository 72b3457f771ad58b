package sphinxserve.server.generate;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import sphinxserve.server.image.ImageDigest;

/**
 * Checks every field of a {@link GenerateRequest} against sphinx.proto's comments, before any work is done.
 * Each refusal is a {@link RequestException} whose message starts with the field's path
 * ({@code messages[1].role}, {@code sampling.top_p}). Context-length checks need the rendered prompt and
 * live in {@code grpc.SphinxService}.
 */
final class RequestValidator {

  /** Longest {@code request_id}. */
  static final int MAX_REQUEST_ID_CHARS = 128;
  /** Most stop strings. */
  static final int MAX_STOP_STRINGS = 8;
  /** Longest stop string in UTF-8 bytes. */
  static final int MAX_STOP_BYTES = 64;
  /** Most top log-probabilities per position. */
  static final int MAX_LOGPROBS = 20;
  /** Largest absolute logit bias (OpenAI's range). */
  static final float MAX_ABS_LOGIT_BIAS = 100f;
  /** Priority range. */
  static final int MIN_PRIORITY = -100;
  static final int MAX_PRIORITY = 100;

  /**
   * Where the conversation's image is, if it has one.
   *
   * @param field the content's path, e.g. {@code messages[0].content[1]}
   * @param content the content ({@code image} or {@code image_digest})
   */
  record ImageRef(String field, Content content) {}

  /**
   * A request that passed validation.
   *
   * @param requestId the given id or a fresh UUID
   * @param image the image reference, or null
   */
  record Valid(String requestId, GenerateRequest request, ImageRef image) {}

  private RequestValidator() {}

  /** Validates with the node's default turn and prompt-character limits. */
  public static Valid validate(GenerateRequest request) {
    return validate(request, 64, 65536);
  }

  /**
   * Validates {@code request}; at most {@code maxTurns} messages and {@code maxPromptChars} characters of text in
   * all (checked first, before any per-field work, so a huge request costs little).
   */
  public static Valid validate(GenerateRequest request, int maxTurns, int maxPromptChars) {
    if (request.getMessagesCount() > maxTurns) {
      throw RequestException.invalid("messages", "at most " + maxTurns + " messages (max-turns), got " + request.getMessagesCount());
    }
    long numChars = 0;
    for (Message m : request.getMessagesList()) {
      for (Content c : m.getContentList()) if (c.getKindCase() == Content.KindCase.TEXT) numChars += c.getText().length();
    }
    if (numChars > maxPromptChars) {
      throw RequestException.invalid("messages", numChars + " characters of text, at most " + maxPromptChars + " (max-prompt-chars)");
    }
    String requestId = request.getRequestId();
    if (requestId.length() > MAX_REQUEST_ID_CHARS) {
      throw RequestException.invalid("request_id", "at most " + MAX_REQUEST_ID_CHARS + " characters (got " + requestId.length() + ")");
    }
    if (requestId.isEmpty()) requestId = UUID.randomUUID().toString();
    ImageRef image;
    if (request.getPromptTokenIdsCount() > 0) {
      if (request.getMessagesCount() > 0) throw RequestException.invalid("prompt_token_ids", "set either messages or prompt_token_ids, not both");
      image = null;
    } else {
      image = validateMessages(request);
    }
    if (request.hasSampling()) validateSampling(request.getSampling());
    if (request.getPriority() < MIN_PRIORITY || request.getPriority() > MAX_PRIORITY) {
      throw RequestException.invalid("priority", "must be in " + MIN_PRIORITY + ".." + MAX_PRIORITY + " (got " + request.getPriority() + ")");
    }
    return new Valid(requestId, request, image);
  }

  private static ImageRef validateMessages(GenerateRequest request) {
    int n = request.getMessagesCount();
    if (n == 0) throw RequestException.invalid("messages", "at least one message (or prompt_token_ids) is required");
    ImageRef image = null;
    for (int i = 0; i < n; i++) {
      Message m = request.getMessages(i);
      String field = "messages[" + i + "]";
      Role role = m.getRole();
      if (role != Role.USER && role != Role.ASSISTANT && role != Role.SYSTEM) {
        throw RequestException.invalid(field + ".role", "must be SYSTEM, USER or ASSISTANT (got " + role + ")");
      }
      if (role == Role.SYSTEM && i > 0) throw RequestException.invalid(field + ".role", "SYSTEM is allowed only as the first message");
      boolean firstTurn = i == 0 || (i == 1 && request.getMessages(0).getRole() == Role.SYSTEM);
      if (role != Role.SYSTEM && firstTurn && role != Role.USER) {
        throw RequestException.invalid(field + ".role", "must be USER: a conversation starts with the user (after an optional SYSTEM message)");
      }
      if (role != Role.SYSTEM && !firstTurn) {
        Role previous = request.getMessages(i - 1).getRole();
        if (role == previous) {
          Role expected = previous == Role.USER ? Role.ASSISTANT : Role.USER;
          throw RequestException.invalid(field + ".role", "must be " + expected + " after " + previous + " (roles alternate)");
        }
      }
      if (i == n - 1 && role != Role.USER) {
        throw RequestException.invalid(field + ".role", "must be USER: the conversation ends with the user's turn");
      }
      if (m.getContentCount() == 0) throw RequestException.invalid(field + ".content", "must not be empty");
      for (int j = 0; j < m.getContentCount(); j++) {
        Content c = m.getContent(j);
        String cf = field + ".content[" + j + "]";
        switch (c.getKindCase()) {
          case TEXT -> {}
          case IMAGE, IMAGE_DIGEST -> {
            if (role == Role.SYSTEM) throw RequestException.invalid(cf, "a SYSTEM message holds text only");
            if (image != null) {
              throw RequestException.invalid(cf, "at most one image per conversation (the image is " + image.field() + ")");
            }
            if (c.getKindCase() == Content.KindCase.IMAGE && c.getImage().isEmpty()) {
              throw RequestException.invalid(cf + ".image", "empty");
            }
            if (c.getKindCase() == Content.KindCase.IMAGE_DIGEST && !ImageDigest.isWellFormed(c.getImageDigest())) {
              throw RequestException.invalid(cf + ".image_digest", "must be a SHA-256 as 64 lower-case hex characters");
            }
            image = new ImageRef(cf, c);
          }
          case KIND_NOT_SET -> throw RequestException.invalid(cf, "empty: set one of text, image, image_digest");
        }
      }
    }
    return image;
  }

  /** Checks {@code s} alone (every choice of a request is sampled with its own). */
  static void validateSampling(SamplingParams s) {
    range("sampling.temperature", s.getTemperature(), 0, 2);
    range("sampling.top_p", s.getTopP(), 0, 1);
    if (s.getTopK() < 0) throw RequestException.invalid("sampling.top_k", "must be >= 0 (0 = off; got " + s.getTopK() + ")");
    range("sampling.min_p", s.getMinP(), 0, 1);
    if (!Float.isFinite(s.getRepetitionPenalty()) || s.getRepetitionPenalty() < 0) {
      throw RequestException.invalid("sampling.repetition_penalty", "must be a finite number >= 0 (0 = off; got " + s.getRepetitionPenalty() + ")");
    }
    range("sampling.presence_penalty", s.getPresencePenalty(), -2, 2);
    range("sampling.frequency_penalty", s.getFrequencyPenalty(), -2, 2);
    if (s.getStopCount() > MAX_STOP_STRINGS) {
      throw RequestException.invalid("sampling.stop", "at most " + MAX_STOP_STRINGS + " strings (got " + s.getStopCount() + ")");
    }
    for (int i = 0; i < s.getStopCount(); i++) {
      String stop = s.getStop(i);
      int bytes = stop.getBytes(StandardCharsets.UTF_8).length;
      if (bytes == 0) throw RequestException.invalid("sampling.stop[" + i + "]", "must not be empty");
      if (bytes > MAX_STOP_BYTES) {
        throw RequestException.invalid("sampling.stop[" + i + "]", "at most " + MAX_STOP_BYTES + " UTF-8 bytes (got " + bytes + ")");
      }
    }
    if (s.getLogprobs() > MAX_LOGPROBS) {
      throw RequestException.invalid("sampling.logprobs", "must be in 0.." + MAX_LOGPROBS + " (got " + Integer.toUnsignedString(s.getLogprobs()) + ")");
    }
    for (var bias : s.getLogitBiasMap().entrySet()) {
      String field = "sampling.logit_bias." + bias.getKey();
      if (bias.getKey() < 0) throw RequestException.invalid(field, "the key must be a token id (>= 0)");
      range(field, bias.getValue(), -MAX_ABS_LOGIT_BIAS, MAX_ABS_LOGIT_BIAS);
    }
    if (s.getMaxTokens() != 0 && Integer.compareUnsigned(s.getMinTokens(), s.getMaxTokens()) > 0) {
      throw RequestException.invalid("sampling.min_tokens", Integer.toUnsignedString(s.getMinTokens())
          + " exceeds sampling.max_tokens " + Integer.toUnsignedString(s.getMaxTokens()));
    }
  }

  private static void range(String field, float value, float min, float max) {
    if (!(value >= min && value <= max)) { // also refuses NaN
      throw RequestException.invalid(field, "must be in " + fmt(min) + ".." + fmt(max) + " (got " + value + ")");
    }
  }

  private static String fmt(float v) {
    return v == (int) v ? Integer.toString((int) v) : Float.toString(v);
  }
}
