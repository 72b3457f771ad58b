package sphinxserve.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import sphinxserve.api.SpecialTokens;
import sphinxserve.api.TextTokenizer;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.RequestException;
import sphinxserve.server.generate.ToolCallStream;

/**
 * OpenAI's request bodies ({@code /v1/chat/completions}, {@code /v1/completions}) as {@link GenerateRequest}s, one per
 * choice: the HTTP API is a translation onto the gRPC request, so both take one path ({@code GenerateCalls}) with the
 * same validation, limits and caches. What OpenAI lacks comes as vLLM's extra fields ({@code top_k}, {@code min_p},
 * {@code repetition_penalty}, {@code min_tokens}, {@code ignore_eos}, {@code structured_outputs}). Errors name the field
 * in OpenAI's {@code param} form ({@code messages[0].content[1].image_url.url}, {@code logit_bias.123}). Structured
 * outputs are read by {@link OpenAiConstraints}, tools by {@link OpenAiTools}.
 */
final class OpenAiRequests {
  /*
   * Every field of OpenAI's two request bodies is accounted for, so nothing that would change the output is ever
   * silently ignored:
   *   - applied: the fields read below (and vLLM's extras);
   *   - accepted and ignored because they cannot change the tokens: user, safety_identifier, metadata, store,
   *     service_tier (who is billed, what is logged, which tier), prompt_cache_key and llama-server's cache_prompt
   *     (caching hints: the prefix cache is automatic and never changes the tokens), stream_options
   *     .include_obfuscation (padding of streamed events only);
   *   - refused with 400 naming the field: what the node does not do (audio, the legacy functions/function_call,
   *     suffix, best_of != n, echo with logprobs, ...) and any field not listed here at all (a misspelt option would
   *     otherwise be silently dropped).
   * JSON null is OpenAI's "default" for every field, so a null field is treated as absent.
   *
   * n and several prompts fan out into one GenerateRequest per choice, OpenAI's index order: prompt p, sample i has
   * index p * n + i; each prompt's choices start together (GenerateCalls.startChoices: rendered once, the first choice's
   * prompt blocks reused by the others through the prefix cache). A seed makes
   * sample i of every prompt use seed + i, so the first choice of a prompt is what the same request with n = 1 gives.
   */

  /** Most stop strings over HTTP (OpenAI's limit; the gRPC API allows more). */
  static final int MAX_STOP = 4;
  /** Most alternatives of {@code /v1/completions}' {@code logprobs} (vLLM's; OpenAI's is 5). */
  static final int MAX_COMPLETION_LOGPROBS = 20;
  /** Most alternatives of chat's {@code top_logprobs} (OpenAI's). */
  static final int MAX_TOP_LOGPROBS = 20;
  /** {@code /v1/completions}' {@code max_tokens} when absent (OpenAI's and vLLM's; chat's is what the context leaves). */
  static final int DEFAULT_COMPLETION_MAX_TOKENS = 16;
  /** Largest absolute {@code logit_bias} value (OpenAI's). */
  static final double MAX_ABS_LOGIT_BIAS = 100;

  /** Fields of both endpoints that are applied. */
  private static final Set<String> COMMON = Set.of("model", "stream", "stream_options", "max_tokens", "temperature", "top_p",
      "n", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "seed", "logprobs",
      // vLLM's extras
      "top_k", "min_p", "repetition_penalty", "min_tokens", "ignore_eos");
  /** Fields that cannot change the output (see the comment above): accepted and ignored. */
  private static final Set<String> HARMLESS = Set.of("user", "safety_identifier", "metadata", "store", "service_tier",
      "prompt_cache_key", "cache_prompt");
  /** Chat's own applied fields (and {@link OpenAiConstraints#FIELDS}, {@link OpenAiTools#FIELDS}). */
  private static final Set<String> CHAT = Set.of("messages", "max_completion_tokens", "top_logprobs", "modalities");
  /** Completions' own applied fields ({@code suffix} and {@code best_of} are checked, then refused or equal to n). */
  private static final Set<String> COMPLETION = Set.of("prompt", "echo", "suffix", "best_of");
  /** Fields OpenAI knows whose features the node does not have. */
  private static final Set<String> UNSUPPORTED = Set.of("audio", "prediction", "reasoning_effort", "verbosity",
      "web_search_options");
  /** OpenAI's deprecated function-calling fields, refused with the way to say the same. */
  private static final Set<String> LEGACY_FUNCTIONS = Set.of("functions", "function_call");

  /**
   * What the node sets for every request: its limits, and how its model writes tool calls.
   *
   * @param maxChoices most choices per request ({@code n} times the prompts)
   * @param maxPromptChars most characters of a completion's prompt text, over all its prompts
   * @param maxImageBytes most encoded bytes of one image ({@code --max-image-bytes}): bounds an image data URL's length
   * @param toolCallSyntax how the model writes tool calls ({@code GenerateCalls.toolCallSyntax()}); null when it makes
   *     none the node parses
   */
  record Limits(int maxChoices, int maxPromptChars, int maxImageBytes, ToolCallStream.Syntax toolCallSyntax) {

    /**
     * The limits {@code config} sets ({@code --max-choices}, {@code --max-prompt-chars}, {@code --max-image-bytes})
     * for a model writing calls so.
     */
    static Limits of(NodeConfig config, ToolCallStream.Syntax toolCallSyntax) {
      return new Limits(config.maxChoices(), config.maxPromptChars(), config.maxImageBytes(), toolCallSyntax);
    }
  }

  /**
   * One choice of a request: its own sampling stream.
   *
   * @param index OpenAI's {@code index}: prompt p, sample i → {@code p * n + i}
   * @param request what {@code GenerateCalls} runs for it
   * @param echoText the prompt's text to put before the answer ({@code echo}), or null
   */
  record ChoiceRequest(int index, GenerateRequest request, String echoText) {}

  /**
   * A translated request and what the response needs that the gRPC requests do not carry.
   *
   * @param choices one per choice, in index order
   * @param n choices per prompt
   * @param stream Server-Sent Events instead of one JSON body
   * @param includeUsage {@code stream_options.include_usage}: {@code "usage": null} on every chunk, a last usage chunk
   * @param logprobs whether to return log-probabilities
   * @param topLogprobs alternatives per position (chat's {@code top_logprobs}, completions' {@code logprobs})
   * @param toolCallSyntax how the answers' tool calls are written, when the request offers tools it may call; null
   *     when answers are plain text
   * @param fieldNames the gRPC request's fields (or field prefixes) that came from differently named HTTP fields →
   *     those HTTP fields, for errors found past this translation ({@link #inHttpTerms})
   */
  record Parsed(List<ChoiceRequest> choices, int n, boolean stream, boolean includeUsage, boolean logprobs, int topLogprobs,
      ToolCallStream.Syntax toolCallSyntax, Map<String, String> fieldNames) {

    Parsed {
      choices = List.copyOf(choices);
      fieldNames = Map.copyOf(fieldNames);
    }

    /**
     * {@code status} with the field its description starts with in the terms of this request's body: a compile error
     * of {@code sampling.constraint.json_schema} becomes one of {@code response_format.json_schema.schema} (or
     * {@code structured_outputs.json}, whichever was sent), {@code tools[0].parameters} one of
     * {@code tools[0].function.parameters}, {@code sampling.max_tokens} one of {@code max_tokens}. Other statuses are
     * returned as they are.
     */
    Status inHttpTerms(Status status) {
      String description = status.getDescription();
      if (status.getCode() != Status.Code.INVALID_ARGUMENT || description == null) return status;
      String renamed = OpenAiTools.rename(renameField(description, fieldNames))
          .replaceFirst("^sampling\\.(?=[a-z_]+[.\\[:])", "").replaceFirst("^prompt_token_ids(?=[\\[:])", "prompt");
      return renamed.equals(description) ? status : status.withDescription(renamed);
    }

    /** Distinct prompts (a completions list has several; chat one). */
    int numPrompts() {
      return choices.size() / n;
    }

    /** The choices prompt by prompt: each list is one prompt's n choices, for {@code GenerateCalls.startChoices}. */
    List<List<ChoiceRequest>> byPrompt() {
      List<List<ChoiceRequest>> groups = new ArrayList<>(numPrompts());
      for (int p = 0; p < numPrompts(); p++) groups.add(choices.subList(p * n, (p + 1) * n));
      return groups;
    }
  }

  private OpenAiRequests() {}

  /** A {@code /v1/chat/completions} body. */
  static Parsed chat(JsonNode body, String requestId, Limits limits) {
    checkFields(body, CHAT, "/v1/chat/completions", true);
    JsonNode messages = body.get("messages");
    if (messages == null || !messages.isArray() || messages.isEmpty()) throw invalid("messages", "must be a non-empty array of messages");
    GenerateRequest.Builder prompt = GenerateRequest.newBuilder();
    for (int i = 0; i < messages.size(); i++) prompt.addMessages(message(messages.get(i), "messages[" + i + "]"));
    OpenAiTools.apply(body, prompt);
    OpenAiConstraints.Asked constraint = OpenAiConstraints.of(body, true);
    JsonNode modalities = present(body, "modalities");
    if (modalities != null && !(modalities.isArray() && modalities.size() == 1 && "text".equals(modalities.get(0).asText()))) {
      throw invalid("modalities", "only [\"text\"] is supported");
    }
    JsonNode maxTokens = present(body, "max_completion_tokens");
    SamplingParams.Builder sampling = sampling(body, maxTokens != null ? "max_completion_tokens" : "max_tokens");
    if (constraint.constraint() != null) sampling.setConstraint(constraint.constraint());
    boolean logprobs = present(body, "logprobs") != null && booleanField(body, "logprobs");
    int topLogprobs = intField(body, "top_logprobs", 0);
    if (topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) throw invalid("top_logprobs", "must be in 0.." + MAX_TOP_LOGPROBS + ", got " + topLogprobs);
    if (topLogprobs > 0 && !logprobs) throw invalid("top_logprobs", "needs logprobs: true");
    if (logprobs) sampling.setLogprobs(Math.max(1, topLogprobs)); // the engine returns the chosen token's with any count > 0
    int n = choices(body, 1, limits);
    List<ChoiceRequest> choices = new ArrayList<>(n);
    for (int i = 0; i < n; i++) choices.add(new ChoiceRequest(i, choice(prompt, requestId, sampling, i), null));
    boolean stream = stream(body);
    ToolCallStream.Syntax syntax = OpenAiTools.mayCall(prompt) ? limits.toolCallSyntax() : null;
    Map<String, String> fieldNames = new HashMap<>(constraint.fieldNames());
    if (maxTokens != null) fieldNames.put("sampling.max_tokens", "max_completion_tokens"); // the context check's refusal
    return new Parsed(choices, n, stream, includeUsage(body, stream), logprobs, topLogprobs, syntax, fieldNames);
  }

  /**
   * A {@code /v1/completions} body. The prompt is raw text, as OpenAI, vLLM and llama-server take it: no chat template;
   * BOS first when the tokenizer's configuration adds one ({@link SpecialTokens#addBos}); a token-id prompt is used as
   * it is.
   */
  static Parsed completion(JsonNode body, String requestId, Limits limits, TextTokenizer tokenizer, SpecialTokens special) {
    checkFields(body, COMPLETION, "/v1/completions", false);
    JsonNode suffix = present(body, "suffix");
    if (suffix != null) throw invalid("suffix", "needs a model with fill-in-the-middle tokens; this one has none");
    boolean echo = present(body, "echo") != null && booleanField(body, "echo");
    JsonNode logprobsNode = present(body, "logprobs");
    int topLogprobs = 0;
    if (logprobsNode != null) {
      if (!logprobsNode.canConvertToExactIntegral() || !logprobsNode.canConvertToInt()) {
        throw invalid("logprobs", "must be an integer 0.." + MAX_COMPLETION_LOGPROBS + " (alternatives per token), got " + logprobsNode);
      }
      topLogprobs = logprobsNode.asInt();
      if (topLogprobs < 0 || topLogprobs > MAX_COMPLETION_LOGPROBS) {
        throw invalid("logprobs", "must be in 0.." + MAX_COMPLETION_LOGPROBS + ", got " + topLogprobs);
      }
      if (echo) {
        throw invalid("echo", "cannot be combined with logprobs: the node does not compute the prompt's log-probabilities");
      }
    }
    List<int[]> prompts = prompts(body, limits, tokenizer, special);
    SamplingParams.Builder sampling = sampling(body, "max_tokens");
    OpenAiConstraints.Asked constraint = OpenAiConstraints.of(body, false);
    if (constraint.constraint() != null) sampling.setConstraint(constraint.constraint());
    if (present(body, "max_tokens") == null) sampling.setMaxTokens(DEFAULT_COMPLETION_MAX_TOKENS);
    if (logprobsNode != null) sampling.setLogprobs(Math.max(1, topLogprobs));
    int n = choices(body, prompts.size(), limits);
    JsonNode bestOf = present(body, "best_of");
    if (bestOf != null && intValue(bestOf, "best_of") != n) {
      throw invalid("best_of", "must equal n (" + n + "): the node returns every choice it generates, got " + bestOf);
    }
    List<ChoiceRequest> choices = new ArrayList<>(prompts.size() * n);
    for (int p = 0; p < prompts.size(); p++) {
      GenerateRequest.Builder prompt = GenerateRequest.newBuilder();
      for (int id : prompts.get(p)) prompt.addPromptTokenIds(id);
      String echoText = echo ? echoText(body.get("prompt"), p, prompts.get(p), tokenizer) : null;
      for (int i = 0; i < n; i++) choices.add(new ChoiceRequest(p * n + i, choice(prompt, requestId, sampling, i), echoText));
    }
    boolean stream = stream(body);
    return new Parsed(choices, n, stream, includeUsage(body, stream), logprobsNode != null, topLogprobs, null, constraint.fieldNames());
  }

  /** Refuses fields the endpoint does not have or the node does not do; null fields count as absent. */
  private static void checkFields(JsonNode body, Set<String> own, String endpoint, boolean chat) {
    for (Iterator<Map.Entry<String, JsonNode>> it = body.fields(); it.hasNext();) {
      Map.Entry<String, JsonNode> field = it.next();
      String name = field.getKey();
      if (field.getValue().isNull() || COMMON.contains(name) || HARMLESS.contains(name) || own.contains(name)) continue;
      if (OpenAiConstraints.FIELDS.contains(name) && (chat || !name.equals("response_format"))) continue;
      if (chat && OpenAiTools.FIELDS.contains(name)) continue;
      if (UNSUPPORTED.contains(name)) throw invalid(name, "is not supported by this node");
      if (LEGACY_FUNCTIONS.contains(name)) {
        throw invalid(name, "is OpenAI's deprecated function calling: send tools and tool_choice instead");
      }
      throw invalid(name, "is not a field of " + endpoint + " this node knows; refused rather than ignored");
    }
  }

  /** The prompts of a completions body as token ids: a string, strings, token ids, or lists of token ids. */
  private static List<int[]> prompts(JsonNode body, Limits limits, TextTokenizer tokenizer, SpecialTokens special) {
    JsonNode prompt = present(body, "prompt");
    if (prompt == null) throw invalid("prompt", "is required");
    String kinds = "must be a string, an array of strings, an array of token ids or an array of arrays of token ids";
    List<int[]> prompts = new ArrayList<>();
    if (prompt.isTextual()) {
      checkChars(prompt.asText().length(), limits);
      prompts.add(text(prompt.asText(), "prompt", tokenizer, special));
      return prompts;
    }
    if (!prompt.isArray() || prompt.isEmpty()) throw invalid("prompt", kinds);
    if (prompt.get(0).isNumber()) {
      prompts.add(tokenIds(prompt, "prompt"));
      return prompts;
    }
    if (prompt.size() > limits.maxChoices()) {
      throw invalid("prompt", "at most " + limits.maxChoices() + " prompts per request (max-choices), got " + prompt.size());
    }
    long numChars = 0;
    for (JsonNode p : prompt) numChars += p.isTextual() ? p.asText().length() : 0;
    checkChars(numChars, limits);
    for (int i = 0; i < prompt.size(); i++) {
      JsonNode p = prompt.get(i);
      String field = "prompt[" + i + "]";
      if (p.isTextual()) {
        prompts.add(text(p.asText(), field, tokenizer, special));
      } else if (p.isArray() && !p.isEmpty()) {
        prompts.add(tokenIds(p, field));
      } else {
        throw invalid(field, "must be a string or a non-empty array of token ids");
      }
    }
    return prompts;
  }

  private static void checkChars(long numChars, Limits limits) {
    if (numChars > limits.maxPromptChars()) {
      throw invalid("prompt", numChars + " characters of text, at most " + limits.maxPromptChars() + " (max-prompt-chars)");
    }
  }

  /** Raw text's token ids: BOS first when the tokenizer adds one, then the text (user text never becomes a special token). */
  private static int[] text(String text, String field, TextTokenizer tokenizer, SpecialTokens special) {
    int[] ids = tokenizer.encode(text);
    if (!special.addBos() || special.bos() < 0) {
      if (ids.length == 0) throw invalid(field, "must not be empty");
      return ids;
    }
    int[] withBos = new int[ids.length + 1];
    withBos[0] = special.bos();
    System.arraycopy(ids, 0, withBos, 1, ids.length);
    return withBos;
  }

  /** Token ids as given; the vocabulary check is the shared path's ({@code prompt_token_ids[i]}). */
  private static int[] tokenIds(JsonNode array, String field) {
    int[] ids = new int[array.size()];
    for (int i = 0; i < ids.length; i++) {
      JsonNode id = array.get(i);
      if (!id.canConvertToExactIntegral() || !id.canConvertToInt() || id.asInt() < 0) {
        throw invalid(field + "[" + i + "]", "must be a token id (a non-negative integer), got " + id);
      }
      ids[i] = id.asInt();
    }
    return ids;
  }

  /** What {@code echo} puts before prompt {@code p}'s answers: the text as sent, or the token ids' text. */
  private static String echoText(JsonNode prompt, int p, int[] ids, TextTokenizer tokenizer) {
    if (prompt.isTextual()) return prompt.asText();
    JsonNode one = prompt.get(p);
    if (one != null && one.isTextual()) return one.asText();
    return tokenizer.decode(ids);
  }

  /** {@code n}: 1 up to what {@code --max-choices} leaves for {@code numPrompts} prompts. */
  private static int choices(JsonNode body, int numPrompts, Limits limits) {
    int n = intField(body, "n", 1);
    if (n < 1) throw invalid("n", "must be at least 1, got " + n);
    if ((long) n * numPrompts > limits.maxChoices()) {
      throw invalid("n", "at most " + limits.maxChoices() + " choices per request (max-choices)"
          + (numPrompts > 1 ? " over " + numPrompts + " prompts" : "") + ", got " + n + (numPrompts > 1 ? " each" : ""));
    }
    return n;
  }

  /** Choice {@code sample} of a prompt: its own request, seeded {@code seed + sample} when a seed is given. */
  private static GenerateRequest choice(GenerateRequest.Builder prompt, String requestId, SamplingParams.Builder sampling, int sample) {
    SamplingParams.Builder s = sampling.clone();
    if (s.hasSeed()) s.setSeed(s.getSeed() + sample);
    return prompt.clone().setRequestId(requestId).setSampling(s).build();
  }

  /** The sampling fields both endpoints share. */
  private static SamplingParams.Builder sampling(JsonNode body, String maxTokensField) {
    SamplingParams.Builder s = SamplingParams.newBuilder();
    JsonNode maxTokens = present(body, maxTokensField);
    if (maxTokens != null) {
      int value = intValue(maxTokens, maxTokensField);
      if (value < 1) throw invalid(maxTokensField, "must be at least 1, got " + value);
      s.setMaxTokens(value);
    }
    // OpenAI's default temperature is 1 (sampling); the gRPC API's 0 means greedy, so say it explicitly.
    s.setTemperature((float) doubleField(body, "temperature", 1.0));
    if (present(body, "top_p") != null) s.setTopP((float) doubleField(body, "top_p", 1.0));
    if (present(body, "top_k") != null) s.setTopK(Math.max(0, intField(body, "top_k", 0))); // vLLM: -1 means off
    if (present(body, "min_p") != null) s.setMinP((float) doubleField(body, "min_p", 0));
    if (present(body, "repetition_penalty") != null) s.setRepetitionPenalty((float) doubleField(body, "repetition_penalty", 1));
    if (present(body, "presence_penalty") != null) s.setPresencePenalty((float) doubleField(body, "presence_penalty", 0));
    if (present(body, "frequency_penalty") != null) s.setFrequencyPenalty((float) doubleField(body, "frequency_penalty", 0));
    JsonNode seed = present(body, "seed");
    if (seed != null) {
      if (!seed.canConvertToExactIntegral() || !seed.canConvertToLong()) throw invalid("seed", "must be an integer");
      s.setSeed(seed.asLong());
    }
    JsonNode stop = present(body, "stop");
    if (stop != null) {
      if (stop.isTextual()) {
        s.addStop(stop.asText());
      } else if (stop.isArray()) {
        if (stop.size() > MAX_STOP) throw invalid("stop", "at most " + MAX_STOP + " strings, got " + stop.size());
        for (int i = 0; i < stop.size(); i++) {
          if (!stop.get(i).isTextual()) throw invalid("stop[" + i + "]", "must be a string");
          s.addStop(stop.get(i).asText());
        }
      } else {
        throw invalid("stop", "must be a string or an array of strings");
      }
    }
    JsonNode bias = present(body, "logit_bias");
    if (bias != null) {
      if (!bias.isObject()) throw invalid("logit_bias", "must be an object of token id → bias in -100..100");
      for (Iterator<Map.Entry<String, JsonNode>> it = bias.fields(); it.hasNext();) {
        Map.Entry<String, JsonNode> entry = it.next();
        String field = "logit_bias." + entry.getKey();
        int id;
        try {
          id = Integer.parseInt(entry.getKey());
        } catch (NumberFormatException e) {
          throw invalid(field, "the key must be a token id");
        }
        if (id < 0) throw invalid(field, "the key must be a token id (>= 0)");
        JsonNode value = entry.getValue();
        if (!value.isNumber() || !(Math.abs(value.asDouble()) <= MAX_ABS_LOGIT_BIAS)) {
          throw invalid(field, "must be a number in -100..100, got " + value);
        }
        s.putLogitBias(id, (float) value.asDouble());
      }
    }
    if (present(body, "min_tokens") != null) s.setMinTokens(intField(body, "min_tokens", 0));
    if (present(body, "ignore_eos") != null) s.setIgnoreEos(booleanField(body, "ignore_eos"));
    return s;
  }

  private static boolean stream(JsonNode body) {
    return present(body, "stream") != null && booleanField(body, "stream");
  }

  /** {@code stream_options}: {@code include_usage} applied, {@code include_obfuscation} harmless, anything else refused. */
  private static boolean includeUsage(JsonNode body, boolean stream) {
    JsonNode options = present(body, "stream_options");
    if (options == null) return false;
    if (!stream) throw invalid("stream_options", "is only allowed with stream: true");
    if (!options.isObject()) throw invalid("stream_options", "must be an object");
    for (Iterator<String> it = options.fieldNames(); it.hasNext();) {
      String name = it.next();
      if (!name.equals("include_usage") && !name.equals("include_obfuscation") && !options.get(name).isNull()) {
        throw invalid("stream_options." + name, "is not an option this node knows; refused rather than ignored");
      }
    }
    return present(options, "include_usage") != null && booleanField(options, "include_usage", "stream_options.include_usage");
  }

  private static Message message(JsonNode m, String field) {
    if (!m.isObject()) throw invalid(field, "must be an object with role and content");
    String role = m.path("role").asText("");
    Role r = switch (role) {
      case "system", "developer" -> Role.SYSTEM;
      case "user" -> Role.USER;
      case "assistant" -> Role.ASSISTANT;
      case "tool" -> Role.TOOL;
      case "function" -> throw invalid(field + ".role", "function is OpenAI's deprecated function calling: answer a tool call with role tool and tool_call_id");
      default -> throw invalid(field + ".role", "must be system, developer, user, assistant or tool, got '" + role + "'");
    };
    Set<String> fields = switch (r) {
      case ASSISTANT -> Set.of("role", "content", "tool_calls");
      case TOOL -> Set.of("role", "content", "tool_call_id");
      default -> Set.of("role", "content");
    };
    for (Iterator<Map.Entry<String, JsonNode>> it = m.fields(); it.hasNext();) {
      Map.Entry<String, JsonNode> entry = it.next();
      String name = entry.getKey();
      // name, refusal, ... would change the prompt a template renders: refused, not dropped.
      if (!fields.contains(name) && !entry.getValue().isNull()) {
        throw invalid(field + "." + name, "is not supported by this node in a" + (r == Role.ASSISTANT ? "n " : " ") + role + " message (it has " + String.join(", ", new TreeSet<>(fields)) + ")");
      }
    }
    Message.Builder out = Message.newBuilder().setRole(r);
    JsonNode content = m.get("content");
    if (r == Role.ASSISTANT && present(m, "tool_calls") != null) {
      OpenAiTools.toolCalls(m.get("tool_calls"), field + ".tool_calls", out);
      if (content == null || content.isNull()) return out.build(); // OpenAI's "content": null beside calls
    }
    if (r == Role.TOOL) {
      JsonNode id = present(m, "tool_call_id");
      if (id == null || !id.isTextual()) throw invalid(field + ".tool_call_id", "is required: the id of the call this message answers");
      out.setToolCallId(id.asText());
    }
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
          if (r == Role.TOOL) throw invalid(pf + ".type", "a tool message holds text only");
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

  /** Refuses keys of the object {@code node} (at {@code field}) outside {@code known}; null values count as absent. */
  static void onlyFields(JsonNode node, String field, Set<String> known) {
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext();) {
      Map.Entry<String, JsonNode> entry = it.next();
      if (!entry.getValue().isNull() && !known.contains(entry.getKey())) {
        throw invalid(field + "." + entry.getKey(), "is not supported by this node; refused rather than ignored");
      }
    }
  }

  /**
   * {@code description} with its leading gRPC field renamed to the HTTP field it came from, by the longest of
   * {@code fieldNames} that is the field or a prefix of it ({@code sampling.constraint.choice.values[2]} →
   * {@code structured_outputs.choice[2]}); unchanged when none is.
   */
  static String renameField(String description, Map<String, String> fieldNames) {
    int colon = description.indexOf(": ");
    String field = colon > 0 ? description.substring(0, colon) : description;
    if (field.contains(" ")) return description;
    String best = null;
    for (String grpc : fieldNames.keySet()) {
      boolean prefix = field.equals(grpc) || field.startsWith(grpc) && (field.charAt(grpc.length()) == '.' || field.charAt(grpc.length()) == '[');
      if (prefix && (best == null || grpc.length() > best.length())) best = grpc;
    }
    return best == null ? description : fieldNames.get(best) + description.substring(best.length());
  }

  /** {@code node.field}, or null when absent or JSON null (OpenAI's "use the default"). */
  static JsonNode present(JsonNode node, String field) {
    JsonNode v = node.get(field);
    return v == null || v.isNull() ? null : v;
  }

  private static int intField(JsonNode body, String field, int fallback) {
    JsonNode v = present(body, field);
    return v == null ? fallback : intValue(v, field);
  }

  private static int intValue(JsonNode v, String field) {
    if (!v.canConvertToExactIntegral() || !v.canConvertToInt()) throw invalid(field, "must be an integer, got " + v);
    return v.asInt();
  }

  private static double doubleField(JsonNode body, String field, double fallback) {
    JsonNode v = present(body, field);
    if (v == null) return fallback;
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
