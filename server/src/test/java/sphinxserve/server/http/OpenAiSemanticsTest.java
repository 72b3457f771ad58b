package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionChoice;
import com.openai.models.completions.CompletionCreateParams;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import dev.sphinxserve.proto.v1.TokenLogprobs;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.api.TextTokenizer;
import sphinxserve.kvcache.KvCacheStats;
import sphinxserve.server.testing.TestNode;

/**
 * OpenAI's semantics of the node's HTTP API, checked with the official OpenAI Java client against a real node (TEST
 * bundle, real engine, real Netty on loopback): the shapes are read by the client users run, not by our own JSON.
 * Where the client cannot express a request (vLLM's extra fields are sent as its additional body properties) or hides
 * a shape, raw JSON over the JDK's client.
 */
class OpenAiSemanticsTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String PROMPT = "def fib(n):";
  private static TestNode node;
  private static OpenAIClient openai;
  private static HttpClient http;
  private static TextTokenizer tokenizer;

  @BeforeAll
  static void start() {
    node = TestNode.start();
    openai = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + node.node().httpPort() + "/v1").apiKey("unused")
        .maxRetries(0).timeout(Duration.ofSeconds(60)).build();
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
    tokenizer = node.runtime().tokenizer();
  }

  @AfterAll
  static void stop() {
    openai.close();
    node.close();
  }

  /** A greedy completion of {@code maxTokens} tokens (EOS ignored, so the length is known). */
  private static CompletionCreateParams.Builder completion(int maxTokens) {
    return CompletionCreateParams.builder().model("test").prompt(PROMPT).maxTokens(maxTokens).temperature(0.0)
        .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true));
  }

  private static ChatCompletionCreateParams.Builder chat(int maxTokens) {
    return ChatCompletionCreateParams.builder().model("test").addUserMessage(PROMPT).maxCompletionTokens(maxTokens).temperature(0.0)
        .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true));
  }

  /** {@code PROMPT} as the tokenizer puts it before a raw text: BOS, then its tokens. */
  private static int[] rawPromptIds(String text) {
    int[] ids = tokenizer.encode(text);
    int[] withBos = new int[ids.length + 1];
    withBos[0] = node.bundle().spec().specialTokens().bos();
    System.arraycopy(ids, 0, withBos, 1, ids.length);
    return withBos;
  }

  private static List<GenerateResponse> grpc(int[] promptIds, SamplingParams sampling) {
    GenerateRequest.Builder request = GenerateRequest.newBuilder().setSampling(sampling);
    for (int id : promptIds) request.addPromptTokenIds(id);
    List<GenerateResponse> out = new ArrayList<>();
    SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(60, TimeUnit.SECONDS).generate(request.build()).forEachRemaining(out::add);
    return out;
  }

  private static String text(int id) {
    return new String(tokenizer.tokenBytes(id), StandardCharsets.UTF_8);
  }

  @Test
  void completions_rawPrompt_givesTheGreedyTokensOfGrpcWithTheRawTokenIds() {
    Completion c = openai.completions().create(completion(10).logprobs(0).build());
    CompletionChoice choice = c.choices().getFirst();
    CompletionChoice.Logprobs logprobs = choice.logprobs().orElseThrow();

    List<GenerateResponse> grpc = grpc(rawPromptIds(PROMPT), SamplingParams.newBuilder().setMaxTokens(10).setTemperature(0)
        .setIgnoreEos(true).setLogprobs(1).build());
    List<TokenLogprobs> expected = grpc.stream().flatMap(r -> r.getLogprobsList().stream()).toList();
    assertEquals(10, expected.size());
    assertEquals(grpc.stream().map(GenerateResponse::getText).reduce("", String::concat), choice.text());
    assertEquals(expected.stream().map(l -> OpenAiResponses.completionToken(tokenizer.tokenBytes(l.getTokenId()))).toList(),
        logprobs.tokens().orElseThrow(), "the same tokens");
    List<Double> tokenLogprobs = logprobs.tokenLogprobs().orElseThrow();
    for (int i = 0; i < expected.size(); i++) assertEquals(expected.get(i).getLogprob(), tokenLogprobs.get(i), 1e-4);
    assertEquals(rawPromptIds(PROMPT).length, c.usage().orElseThrow().promptTokens(), "BOS and the text's tokens: no template");
    assertEquals(CompletionChoice.FinishReason.LENGTH, choice.finishReason());

    // The same text as a chat message goes through the template: a different, longer prompt.
    ChatCompletion chat = openai.chat().completions().create(chat(10).build());
    assertTrue(chat.usage().orElseThrow().promptTokens() > c.usage().orElseThrow().promptTokens());
  }

  @Test
  void completions_maxTokensDefaultsToOpenAis16() {
    Completion c = openai.completions().create(CompletionCreateParams.builder().model("test").prompt(PROMPT).temperature(0.0)
        .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true)).build());
    assertEquals(16, c.usage().orElseThrow().completionTokens());
    assertEquals(CompletionChoice.FinishReason.LENGTH, c.choices().getFirst().finishReason());
  }

  @Test
  void completions_logprobsShape_topAlternativesAndTextOffsets() {
    Completion c = openai.completions().create(completion(12).logprobs(3).build());
    CompletionChoice choice = c.choices().getFirst();
    CompletionChoice.Logprobs logprobs = choice.logprobs().orElseThrow();
    List<String> tokens = logprobs.tokens().orElseThrow();
    List<Long> offsets = logprobs.textOffset().orElseThrow();
    List<CompletionChoice.Logprobs.TopLogprob> top = logprobs.topLogprobs().orElseThrow();
    assertEquals(12, tokens.size());
    assertEquals(12, offsets.size());
    assertEquals(12, top.size());
    assertEquals(0L, offsets.getFirst());
    for (int i = 0; i < tokens.size(); i++) {
      Map<String, JsonValue> alternatives = top.get(i)._additionalProperties();
      assertTrue(alternatives.size() >= 3 && alternatives.size() <= 4, "3 most likely and the chosen one: " + alternatives);
      assertTrue(alternatives.containsKey(tokens.get(i)), "the chosen token is among them");
      // Greedy: the chosen token is the most likely one.
      double chosen = logprobs.tokenLogprobs().orElseThrow().get(i);
      for (JsonValue v : alternatives.values()) assertTrue(v.convert(Double.class) <= chosen + 1e-6);
      if (i > 0) assertTrue(offsets.get(i) >= offsets.get(i - 1));
      if (!tokens.get(i).startsWith("bytes:")) { // a piece of a character has no place of its own in the text
        assertTrue(choice.text().startsWith(tokens.get(i), offsets.get(i).intValue()), "token " + i + " at its offset in " + choice.text());
      }
    }
  }

  @Test
  void completions_textOffset_countsTheEchoedPrompt_streamedAndNot() throws Exception {
    // echo with logprobs is refused (no prompt logprobs), so the offsets after an echo are checked on echo alone's text
    // against logprobs without echo: every offset moves by the prompt's length.
    Completion plain = openai.completions().create(completion(6).logprobs(0).build());
    Completion echoed = openai.completions().create(completion(6).echo(true).build());
    assertEquals(PROMPT + plain.choices().getFirst().text(), echoed.choices().getFirst().text());
    assertTrue(echoed.choices().getFirst().logprobs().isEmpty());

    StringBuilder streamed = new StringBuilder();
    List<Long> streamedOffsets = new ArrayList<>();
    try (StreamResponse<Completion> s = openai.completions().createStreaming(completion(6).logprobs(0).build())) {
      s.stream().forEach(chunk -> chunk.choices().forEach(ch -> {
        streamed.append(ch.text());
        ch.logprobs().ifPresent(l -> streamedOffsets.addAll(l.textOffset().orElseThrow()));
      }));
    }
    assertEquals(plain.choices().getFirst().text(), streamed.toString());
    assertEquals(plain.choices().getFirst().logprobs().orElseThrow().textOffset().orElseThrow(), streamedOffsets,
        "streamed offsets continue from chunk to chunk");
  }

  @Test
  void completions_echo_prependsThePromptText_stringsAndTokenIds() {
    Completion c = openai.completions().create(completion(5).echo(true).build());
    Completion without = openai.completions().create(completion(5).build());
    assertEquals(PROMPT + without.choices().getFirst().text(), c.choices().getFirst().text());

    List<Long> ids = new ArrayList<>();
    for (int id : rawPromptIds(PROMPT)) ids.add((long) id);
    Completion tokens = openai.completions().create(completion(5).promptOfArrayOfTokens(ids).echo(true).build());
    assertEquals(tokenizer.decode(rawPromptIds(PROMPT)) + without.choices().getFirst().text(), tokens.choices().getFirst().text(),
        "token ids are echoed as their text; the same ids give the same answer");

    StringBuilder streamed = new StringBuilder();
    try (StreamResponse<Completion> s = openai.completions().createStreaming(completion(5).echo(true).build())) {
      s.stream().forEach(chunk -> chunk.choices().forEach(ch -> streamed.append(ch.text())));
    }
    assertEquals(c.choices().getFirst().text(), streamed.toString());
  }

  @Test
  void completions_promptList_oneChoiceGroupPerPrompt_promptTokensCountedOnce() {
    List<String> prompts = List.of(PROMPT, "Once upon a time");
    Completion c = openai.completions().create(completion(4).promptOfArrayOfStrings(prompts).n(2).build());
    assertEquals(List.of(0L, 1L, 2L, 3L), c.choices().stream().map(CompletionChoice::index).toList());
    for (int p = 0; p < prompts.size(); p++) {
      Completion alone = openai.completions().create(completion(4).prompt(prompts.get(p)).build());
      String expected = alone.choices().getFirst().text();
      assertEquals(expected, c.choices().get(2 * p).text(), "prompt " + p + ", sample 0 (greedy)");
      assertEquals(expected, c.choices().get(2 * p + 1).text(), "prompt " + p + ", sample 1 (greedy)");
    }
    long promptTokens = rawPromptIds(prompts.get(0)).length + rawPromptIds(prompts.get(1)).length;
    assertEquals(promptTokens, c.usage().orElseThrow().promptTokens(), "each prompt once, not once per choice");
    assertEquals(4 * 4, c.usage().orElseThrow().completionTokens());
  }

  @Test
  void n_givesDistinctSampledChoices_wholeAndStreamed_seedPlusIndex() {
    CompletionCreateParams sampled = completion(16).temperature(1.0).n(4).seed(42).build();
    Completion c = openai.completions().create(sampled);
    assertEquals(List.of(0L, 1L, 2L, 3L), c.choices().stream().map(CompletionChoice::index).toList());
    Set<String> texts = new HashSet<>();
    c.choices().forEach(ch -> texts.add(ch.text()));
    assertTrue(texts.size() > 1, "each choice samples on its own: " + texts);
    assertEquals(4 * 16, c.usage().orElseThrow().completionTokens());
    assertEquals(rawPromptIds(PROMPT).length, c.usage().orElseThrow().promptTokens(), "the shared prompt counted once");
    // Choice i is seeded seed + i: choice 1 is what n = 1 with seed 43 gives.
    Completion seeded = openai.completions().create(completion(16).temperature(1.0).seed(43).build());
    assertEquals(seeded.choices().getFirst().text(), c.choices().get(1).text());

    Map<Long, StringBuilder> streamed = new TreeMap<>();
    Map<Long, String> finishes = new HashMap<>();
    try (StreamResponse<Completion> s = openai.completions().createStreaming(sampled)) {
      s.stream().forEach(chunk -> chunk.choices().forEach(ch -> {
        streamed.computeIfAbsent(ch.index(), k -> new StringBuilder()).append(ch.text());
        ch._finishReason().asKnown().ifPresent(f -> finishes.put(ch.index(), f.asString()));
      }));
    }
    assertEquals(Set.of(0L, 1L, 2L, 3L), streamed.keySet());
    for (CompletionChoice ch : c.choices()) assertEquals(ch.text(), streamed.get(ch.index()).toString(), "choice " + ch.index());
    assertEquals(Map.of(0L, "length", 1L, "length", 2L, "length", 3L, "length"), finishes);

    ChatCompletion chat = openai.chat().completions().create(chat(16).temperature(1.0).n(3).build());
    assertEquals(List.of(0L, 1L, 2L), chat.choices().stream().map(ChatCompletion.Choice::index).toList());
    assertTrue(chat.choices().stream().map(ch -> ch.message().content().orElse("")).distinct().count() > 1);
  }

  @Test
  void n_theOtherChoicesReuseThePromptsKvThroughThePrefixCache() {
    List<Long> ids = new ArrayList<>(); // a prompt no other test sends: 200 ids, 12 full blocks of 16
    for (int i = 0; i < 200; i++) ids.add(1L + (i * 37L + 11) % (tokenizer.vocabSize() - 1));
    KvCacheStats before = node.backend().kvStats();
    Completion c = openai.completions().create(completion(4).promptOfArrayOfTokens(ids).temperature(1.0).n(4).build());
    KvCacheStats after = node.backend().kvStats();
    assertEquals(4, c.choices().size());
    long fullBlockTokens = ids.size() / before.blockSize() * before.blockSize();
    assertTrue(after.numPrefixHitTokens() - before.numPrefixHitTokens() >= 3 * fullBlockTokens,
        "choices 1..3 find choice 0's blocks: " + (after.numPrefixHitTokens() - before.numPrefixHitTokens()) + " hit tokens");
  }

  @Test
  void logitBias_plus100ForcesAToken_minus100BansTheGreedyOne() {
    Completion greedy = openai.completions().create(completion(4).logprobs(0).build());
    String greedyFirst = greedy.choices().getFirst().logprobs().orElseThrow().tokens().orElseThrow().getFirst();
    int forced = 0;
    for (int id = 100; id < tokenizer.vocabSize(); id++) {
      String t = text(id);
      if (!t.isEmpty() && !t.contains("\uFFFD") && !t.equals(greedyFirst) && t.chars().allMatch(ch -> ch >= 'a' && ch <= 'z')) {
        forced = id;
        break;
      }
    }
    assertTrue(forced > 0);
    Completion c = openai.completions().create(completion(4).logprobs(0)
        .logitBias(CompletionCreateParams.LogitBias.builder().putAdditionalProperty(Integer.toString(forced), JsonValue.from(100)).build()).build());
    assertEquals(List.of(text(forced), text(forced), text(forced), text(forced)),
        c.choices().getFirst().logprobs().orElseThrow().tokens().orElseThrow(), "+100 forces the token every step");

    int greedyId = grpc(rawPromptIds(PROMPT), SamplingParams.newBuilder().setMaxTokens(1).setTemperature(0).setIgnoreEos(true).build())
        .getFirst().getTokenIds(0);
    Completion banned = openai.completions().create(completion(4).logprobs(0)
        .logitBias(CompletionCreateParams.LogitBias.builder().putAdditionalProperty(Integer.toString(greedyId), JsonValue.from(-100)).build()).build());
    List<String> bannedTokens = banned.choices().getFirst().logprobs().orElseThrow().tokens().orElseThrow();
    assertNotEquals(text(greedyId), bannedTokens.getFirst(), "-100 bans the greedy token");
    assertFalse(bannedTokens.contains(text(greedyId)));

    // The chat endpoint applies it too.
    ChatCompletion forcedChat = openai.chat().completions().create(chat(3)
        .logitBias(ChatCompletionCreateParams.LogitBias.builder().putAdditionalProperty(Integer.toString(forced), JsonValue.from(100)).build()).build());
    assertEquals(text(forced).repeat(3), forcedChat.choices().getFirst().message().content().orElseThrow());
  }

  @Test
  void grpc_logitBias_sameEffectAndValidation() {
    int greedyId = grpc(rawPromptIds(PROMPT), SamplingParams.newBuilder().setMaxTokens(1).setTemperature(0).setIgnoreEos(true).build())
        .getFirst().getTokenIds(0);
    int forced = (greedyId + 7) % tokenizer.vocabSize();
    List<GenerateResponse> out = grpc(rawPromptIds(PROMPT), SamplingParams.newBuilder().setMaxTokens(3).setTemperature(0).setIgnoreEos(true)
        .putLogitBias(forced, 100).build());
    assertEquals(List.of(forced, forced, forced), out.stream().flatMap(r -> r.getTokenIdsList().stream()).toList());
    int vocab = node.bundle().spec().vocabSize();
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> grpc(rawPromptIds(PROMPT), SamplingParams.newBuilder().setMaxTokens(3).putLogitBias(vocab, 1).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().startsWith("sampling.logit_bias." + vocab + ":"), e.getStatus().getDescription());
    e = assertThrows(StatusRuntimeException.class,
        () -> grpc(rawPromptIds(PROMPT), SamplingParams.newBuilder().setMaxTokens(3).putLogitBias(5, 100.5f).build()));
    assertTrue(e.getStatus().getDescription().startsWith("sampling.logit_bias.5:"), e.getStatus().getDescription());
  }

  @Test
  void chatStream_chunkShapes_usageNull_lastDeltaEmpty_finishReasonsOpenAis() {
    List<ChatCompletionChunk> chunks = new ArrayList<>();
    try (StreamResponse<ChatCompletionChunk> s = openai.chat().completions().createStreaming(chat(6).n(2)
        .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
      s.stream().forEach(chunks::add);
    }
    ChatCompletionChunk usage = chunks.getLast();
    assertTrue(usage.choices().isEmpty(), "the usage chunk has no choices");
    assertEquals(12, usage.usage().orElseThrow().completionTokens());
    Map<Long, Integer> seen = new HashMap<>();
    for (ChatCompletionChunk chunk : chunks.subList(0, chunks.size() - 1)) {
      assertEquals("chat.completion.chunk", chunk._object_().asString().orElseThrow());
      assertTrue(chunk._usage().isNull(), "\"usage\": null on every chunk but the last, when include_usage is set");
      for (ChatCompletionChunk.Choice choice : chunk.choices()) {
        int n = seen.merge(choice.index(), 1, Integer::sum);
        assertEquals(n == 1, choice.delta().role().isPresent(), "the role on a choice's first chunk only");
        choice.finishReason().ifPresent(f -> {
          assertEquals("length", f.asString());
          assertTrue(choice.delta()._content().isMissing() && choice.delta()._role().isMissing(), "the last delta is {}");
        });
      }
    }
    assertEquals(Set.of(0L, 1L), seen.keySet());

    // Without include_usage no chunk carries a usage field at all.
    try (StreamResponse<ChatCompletionChunk> s = openai.chat().completions().createStreaming(chat(3).build())) {
      s.stream().forEach(chunk -> assertTrue(chunk._usage().isMissing()));
    }
  }

  @Test
  void completionsStream_usageNullThenAUsageChunk_finishReasonStopOnEos() {
    List<Completion> chunks = new ArrayList<>();
    try (StreamResponse<Completion> s = openai.completions().createStreaming(CompletionCreateParams.builder().model("test").prompt(PROMPT)
        .maxTokens(40).temperature(0.0).putAdditionalBodyProperty("logit_bias",
            JsonValue.from(Map.of(Integer.toString(node.bundle().spec().specialTokens().eos()), 100)))
        .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
      s.stream().forEach(chunks::add);
    }
    Completion last = chunks.getLast();
    assertTrue(last.choices().isEmpty());
    assertTrue(last.usage().isPresent());
    List<String> finishes = new ArrayList<>();
    StringBuilder text = new StringBuilder();
    for (Completion chunk : chunks.subList(0, chunks.size() - 1)) {
      assertTrue(chunk._usage().isNull());
      assertEquals("text_completion", chunk._object_().asString().orElseThrow());
      chunk.choices().forEach(ch -> {
        text.append(ch.text());
        ch._finishReason().asKnown().ifPresent(f -> finishes.add(f.asString()));
      });
    }
    assertEquals(List.of("stop"), finishes, "EOS, forced first, ends the answer");
    assertEquals("", text.toString());
  }

  @Test
  void refusals_nameTheField() throws Exception {
    assertRefused("suffix", () -> openai.completions().create(completion(4).suffix("\n}").build()));
    assertRefused("best_of", () -> openai.completions().create(completion(4).bestOf(2).build()));
    assertRefused("echo", () -> openai.completions().create(completion(4).echo(true).logprobs(1).build()));
    assertRefused("logprobs", () -> openai.completions().create(completion(4).logprobs(21).build()));
    assertRefused("n", () -> openai.completions().create(completion(4).n(9).build()));
    assertRefused("n", () -> openai.completions().create(completion(4).promptOfArrayOfStrings(List.of("a", "b", "c")).n(3).build()));
    assertRefused("stop", () -> openai.completions().create(completion(4).stopOfStrings(List.of("a", "b", "c", "d", "e")).build()));
    assertRefused("frobnicate", () -> openai.completions().create(completion(4).putAdditionalBodyProperty("frobnicate", JsonValue.from(1)).build()));
    assertRefused("top_logprobs", () -> openai.completions().create(completion(4).putAdditionalBodyProperty("top_logprobs", JsonValue.from(2)).build()));
    int vocab = node.bundle().spec().vocabSize();
    assertRefused("logit_bias." + vocab, () -> openai.completions().create(completion(4)
        .logitBias(CompletionCreateParams.LogitBias.builder().putAdditionalProperty(Integer.toString(vocab), JsonValue.from(5)).build()).build()));
    assertRefused("logit_bias.5", () -> openai.chat().completions().create(chat(4)
        .logitBias(ChatCompletionCreateParams.LogitBias.builder().putAdditionalProperty("5", JsonValue.from(101)).build()).build()));
    assertRefused("logit_bias.x", () -> openai.chat().completions().create(chat(4)
        .logitBias(ChatCompletionCreateParams.LogitBias.builder().putAdditionalProperty("x", JsonValue.from(1)).build()).build()));
    assertRefused("tools", () -> openai.chat().completions().create(chat(4).putAdditionalBodyProperty("tools",
        JsonValue.from(List.of(Map.of("type", "function", "function", Map.of("name", "f"))))).build()));
    assertRefused("messages[0].name", () -> openai.chat().completions().create(ChatCompletionCreateParams.builder().model("test")
        .addMessage(com.openai.models.chat.completions.ChatCompletionUserMessageParam.builder().content("hi").name("alice").build()).build()));
    assertRefused("stream_options.continuous_usage_stats", () -> openai.chat().completions().createStreaming(chat(4)
        .streamOptions(ChatCompletionStreamOptions.builder().putAdditionalProperty("continuous_usage_stats", JsonValue.from(true)).build())
        .build()).stream().count());

    // Harmless fields are accepted; null counts as absent.
    HttpResponse<String> ok = post("/v1/chat/completions", "{\"model\":\"test\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        + "\"max_tokens\":2,\"user\":\"u1\",\"store\":false,\"metadata\":{\"k\":\"v\"},\"service_tier\":\"auto\",\"suffix\":null,"
        + "\"parallel_tool_calls\":true,\"tools\":null}");
    assertEquals(200, ok.statusCode(), ok.body());
    HttpResponse<String> bool = post("/v1/completions", "{\"prompt\":\"hi\",\"max_tokens\":2,\"logprobs\":true}");
    assertEquals(400, bool.statusCode());
    assertEquals("logprobs", JSON.readTree(bool.body()).path("error").path("param").asText(), "completions' logprobs is a count");
    HttpResponse<String> mixed = post("/v1/completions", "{\"prompt\":[\"a\", [1, 2]],\"max_tokens\":2}");
    assertEquals(200, mixed.statusCode(), "a list may mix strings and token-id lists (vLLM): " + mixed.body());
    HttpResponse<String> wrong = post("/v1/completions", "{\"prompt\":[\"a\", 7],\"max_tokens\":2}");
    assertEquals("prompt[1]", JSON.readTree(wrong.body()).path("error").path("param").asText());
  }

  private static void assertRefused(String param, Runnable call) {
    BadRequestException e = assertThrows(BadRequestException.class, call::run);
    assertEquals(400, e.statusCode());
    assertEquals(param, e.param().orElse(null), e.getMessage());
  }

  private static HttpResponse<String> post(String path, String body) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.node().httpPort() + path)).timeout(Duration.ofSeconds(60))
        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString());
  }
}
