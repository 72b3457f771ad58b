package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.testing.TestImages;
import sphinxserve.server.testing.TestNode;

/**
 * The OpenAI-compatible HTTP API of a real node (TEST bundle, real engine, real Netty on loopback) through the JDK's
 * HTTP client: the same answers as gRPC, streamed as OpenAI's chunks, OpenAI's errors naming the field, images as
 * data: URLs, credentials, and a client that goes away freeing its request.
 */
class OpenAiHttpTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static TestNode node;
  private static HttpClient http;

  @BeforeAll
  static void start() {
    node = TestNode.start();
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
  }

  @AfterAll
  static void stop() {
    node.close();
  }

  private static String url(String path) {
    return "http://127.0.0.1:" + node.node().httpPort() + path;
  }

  private static HttpResponse<String> post(String path, String body) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create(url(path))).timeout(Duration.ofSeconds(60))
        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static ObjectNode chat(String question, int maxTokens) {
    ObjectNode body = JSON.createObjectNode().put("model", "test").put("max_tokens", maxTokens).put("temperature", 0)
        .put("ignore_eos", true);
    body.putArray("messages").addObject().put("role", "user").put("content", question);
    return body;
  }

  @Test
  void models_listsTheServedModel() throws Exception {
    HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url("/v1/models"))).GET().build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode());
    JsonNode data = JSON.readTree(r.body()).path("data");
    assertEquals("test", data.get(0).path("id").asText());
    assertEquals(node.bundle().spec().maxContextTokens(), data.get(0).path("max_model_len").asInt());
  }

  @Test
  void chat_answersAsGrpcDoes_wholeAndStreamed() throws Exception {
    HttpResponse<String> whole = post("/v1/chat/completions", chat("What is in the image?", 12).toString());
    assertEquals(200, whole.statusCode(), whole.body());
    JsonNode body = JSON.readTree(whole.body());
    assertEquals("chat.completion", body.path("object").asText());
    String text = body.path("choices").get(0).path("message").path("content").asText();
    assertEquals("length", body.path("choices").get(0).path("finish_reason").asText());
    assertEquals(12, body.path("usage").path("completion_tokens").asInt());

    List<GenerateResponse> grpc = new ArrayList<>();
    SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(60, TimeUnit.SECONDS).generate(GenerateRequest.newBuilder()
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("What is in the image?")))
        .setSampling(SamplingParams.newBuilder().setMaxTokens(12).setTemperature(0).setIgnoreEos(true)).build()).forEachRemaining(grpc::add);
    assertEquals(grpc.stream().map(GenerateResponse::getText).reduce("", String::concat), text, "the same path as gRPC");

    ObjectNode streamed = chat("What is in the image?", 12).put("stream", true);
    streamed.putObject("stream_options").put("include_usage", true);
    HttpResponse<String> sse = post("/v1/chat/completions", streamed.toString());
    assertEquals(200, sse.statusCode());
    assertTrue(sse.headers().firstValue("content-type").orElse("").startsWith("text/event-stream"));
    List<String> events = sse.body().lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
    assertEquals("[DONE]", events.getLast());
    StringBuilder content = new StringBuilder();
    JsonNode first = JSON.readTree(events.getFirst());
    assertEquals("assistant", first.path("choices").get(0).path("delta").path("role").asText());
    String finish = null;
    for (String e : events.subList(0, events.size() - 2)) {
      JsonNode choice = JSON.readTree(e).path("choices").get(0);
      assertEquals("chat.completion.chunk", JSON.readTree(e).path("object").asText());
      content.append(choice.path("delta").path("content").asText(""));
      if (!choice.path("finish_reason").isNull()) finish = choice.path("finish_reason").asText();
    }
    assertEquals(text, content.toString());
    assertEquals("length", finish);
    JsonNode usage = JSON.readTree(events.get(events.size() - 2));
    assertEquals(0, usage.path("choices").size());
    assertEquals(12, usage.path("usage").path("completion_tokens").asInt());
  }

  @Test
  void chat_logprobsAndImagesAsDataUrls() throws Exception {
    ObjectNode body = chat("ignored", 4).put("logprobs", true).put("top_logprobs", 2);
    ObjectNode user = (ObjectNode) body.withArray("messages").get(0);
    var parts = user.putArray("content");
    parts.addObject().put("type", "text").put("text", "What is in the image?");
    String png = Base64.getEncoder().encodeToString(TestImages.png(TestImages.noise(64, 48, 1)));
    parts.addObject().put("type", "image_url").putObject("image_url").put("url", "data:image/png;base64," + png);
    HttpResponse<String> r = post("/v1/chat/completions", body.toString());
    assertEquals(200, r.statusCode(), r.body());
    JsonNode json = JSON.readTree(r.body());
    JsonNode logprobs = json.path("choices").get(0).path("logprobs").path("content");
    assertEquals(4, logprobs.size());
    assertEquals(2, logprobs.get(0).path("top_logprobs").size());
    assertTrue(logprobs.get(0).path("logprob").asDouble() <= 0);
    assertTrue(json.path("usage").path("prompt_tokens").asInt() > node.bundle().spec().vision().tokensPerImage(), "the image is in the prompt");
  }

  @Test
  void followUpTurnResendingTheImage_isAnImageCacheHit() throws Exception {
    String png = "data:image/png;base64," + Base64.getEncoder().encodeToString(TestImages.png(TestImages.noise(80, 60, 7)));
    ObjectNode first = chat("ignored", 3);
    var parts = ((ObjectNode) first.withArray("messages").get(0)).putArray("content");
    parts.addObject().put("type", "image_url").putObject("image_url").put("url", png);
    parts.addObject().put("type", "text").put("text", "What is in the image?");
    HttpResponse<String> r1 = post("/v1/chat/completions", first.toString());
    assertEquals(200, r1.statusCode(), r1.body());
    long hits = node.images().numHits();
    ObjectNode second = first.deepCopy();
    second.withArray("messages").addObject().put("role", "assistant")
        .put("content", JSON.readTree(r1.body()).path("choices").get(0).path("message").path("content").asText());
    second.withArray("messages").addObject().put("role", "user").put("content", "And where?");
    HttpResponse<String> r2 = post("/v1/chat/completions", second.toString());
    assertEquals(200, r2.statusCode(), r2.body());
    assertEquals(hits + 1, node.images().numHits(), "the follow-up found the image the first turn encoded");
    assertTrue(JSON.readTree(r2.body()).path("usage").path("prompt_tokens_details").path("cached_tokens").asInt() > 0,
        "and reused the first turn's prefix: " + r2.body());
  }

  @Test
  void tls_theSameFilesServeHttps(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
    java.nio.file.Path[] pem = sphinxserve.server.SphinxNodeTest.selfSigned(dir);
    try (TestNode secured = TestNode.start("--tls-cert=" + pem[0], "--tls-key=" + pem[1])) {
      java.security.KeyStore trust = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType());
      trust.load(null, null);
      try (InputStream in = java.nio.file.Files.newInputStream(pem[0])) {
        trust.setCertificateEntry("node", java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(in));
      }
      javax.net.ssl.TrustManagerFactory tmf = javax.net.ssl.TrustManagerFactory.getInstance(javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
      tmf.init(trust);
      javax.net.ssl.SSLContext ssl = javax.net.ssl.SSLContext.getInstance("TLS");
      ssl.init(null, tmf.getTrustManagers(), null);
      HttpClient https = HttpClient.newBuilder().sslContext(ssl).version(HttpClient.Version.HTTP_1_1).build();
      HttpResponse<String> r = https.send(HttpRequest.newBuilder(URI.create("https://localhost:" + secured.node().httpPort() + "/v1/models")).build(),
          HttpResponse.BodyHandlers.ofString());
      assertEquals(200, r.statusCode());
      var plaintext = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, () -> http.send(
          HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + secured.node().httpPort() + "/v1/models")).timeout(Duration.ofSeconds(5)).build(),
          HttpResponse.BodyHandlers.ofString()));
      assertNotNull(plaintext);
    }
  }

  @Test
  void completions_takeAPlainPrompt() throws Exception {
    ObjectNode body = JSON.createObjectNode().put("prompt", "Say something.").put("max_tokens", 5).put("temperature", 0).put("ignore_eos", true);
    HttpResponse<String> r = post("/v1/completions", body.toString());
    assertEquals(200, r.statusCode(), r.body());
    JsonNode json = JSON.readTree(r.body());
    assertEquals("text_completion", json.path("object").asText());
    assertNotNull(json.path("choices").get(0).path("text").asText(null));
    assertEquals(5, json.path("usage").path("completion_tokens").asInt());
  }

  @Test
  void completions_takeATokenArrayAsTheRawPrompt() throws Exception {
    ObjectNode body = JSON.createObjectNode().put("max_tokens", 4).put("temperature", 0).put("ignore_eos", true);
    body.putArray("prompt").add(1).add(40).add(41).add(42).add(43);
    HttpResponse<String> r = post("/v1/completions", body.toString());
    assertEquals(200, r.statusCode(), r.body());
    assertEquals(5, JSON.readTree(r.body()).path("usage").path("prompt_tokens").asInt(), "the ids as they are: no template, no BOS");
    body.putArray("prompt").add(1).add(node.bundle().spec().vocabSize());
    assertError(post("/v1/completions", body.toString()), 400, "prompt[1]");
  }

  @Test
  void errors_inOpenAisShapeNamingTheField() throws Exception {
    assertError(post("/v1/chat/completions", chat("x", 4).put("temperature", 5).toString()), 400, "temperature");
    assertError(post("/v1/chat/completions", chat("x", 4).put("n", 9).toString()), 400, "n"); // over --max-choices
    assertError(post("/v1/chat/completions", chat("x", 4).put("model", "gpt-4").toString()), 404, "model");
    assertError(post("/v1/chat/completions", "{not json"), 400, null);
    ObjectNode remote = chat("x", 4);
    var parts = ((ObjectNode) remote.withArray("messages").get(0)).putArray("content");
    parts.addObject().put("type", "image_url").putObject("image_url").put("url", "https://example.com/cat.png");
    JsonNode error = assertError(post("/v1/chat/completions", remote.toString()), 400, "messages[0].content[0].image_url.url");
    assertTrue(error.path("message").asText().contains("fetches nothing"), error.toString());
    HttpResponse<String> missing = http.send(HttpRequest.newBuilder(URI.create(url("/v2/other"))).GET().build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(404, missing.statusCode());
  }

  @Test
  void clientThatGoesAway_hasItsRequestAbortedAndBlocksFreed() throws Exception {
    // Slowed to 10 ms a step, the answer would take ~4 s: the request must end within a few steps of the close.
    java.util.concurrent.atomic.AtomicInteger steps = new java.util.concurrent.atomic.AtomicInteger();
    node.runtime().beforeStep(() -> {
      steps.incrementAndGet();
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    ObjectNode body = chat("Tell me everything.", 400).put("stream", true);
    HttpResponse<InputStream> r = http.send(HttpRequest.newBuilder(URI.create(url("/v1/chat/completions")))
        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(),
        HttpResponse.BodyHandlers.ofInputStream());
    assertEquals(200, r.statusCode());
    try (InputStream in = r.body(); BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = reader.readLine()) != null && !line.startsWith("data: ")) { }
      assertNotNull(line, "a first chunk");
    } // closing the body closes the connection
    int stepsAtClose = steps.get();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while ((node.numBlocksInUse() > 0 || node.backend().stats().numRunning() + node.backend().stats().numWaiting() > 0) && System.nanoTime() < deadline) Thread.sleep(20);
    assertEquals(0, node.backend().stats().numRunning() + node.backend().stats().numWaiting(), "the request ended with the connection");
    assertEquals(0, node.numBlocksInUse(), "its KV blocks are free");
    assertTrue(steps.get() - stepsAtClose < 50, (steps.get() - stepsAtClose) + " steps ran after the client left (400 to go)");
    node.runtime().beforeStep(() -> {});
  }

  @Test
  void credentials_sameTenantsAsGrpc() throws Exception {
    java.nio.file.Path tenants = java.nio.file.Files.createTempFile("tenants", ".properties");
    java.nio.file.Files.writeString(tenants, "alice.key-sha256=" + Tenants.sha256("alice-key") + "\n");
    try (TestNode secured = TestNode.start("--tenants=" + tenants)) {
      String base = "http://127.0.0.1:" + secured.node().httpPort();
      HttpResponse<String> anonymous = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
          .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(chat("x", 2).toString())).build(), HttpResponse.BodyHandlers.ofString());
      assertError(anonymous, 401, null);
      HttpResponse<String> alice = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
          .header("authorization", "Bearer alice-key").header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(chat("x", 2).toString())).build(),
          HttpResponse.BodyHandlers.ofString());
      assertEquals(200, alice.statusCode(), alice.body());
    }
  }

  private static JsonNode assertError(HttpResponse<String> r, int status, String param) throws Exception {
    assertEquals(status, r.statusCode(), r.body());
    JsonNode error = JSON.readTree(r.body()).path("error");
    assertFalse(error.path("message").asText().isEmpty(), r.body());
    if (param != null) assertEquals(param, error.path("param").asText(), r.body());
    return error;
  }
}
