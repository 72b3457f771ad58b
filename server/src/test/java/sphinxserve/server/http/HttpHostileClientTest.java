package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.testing.TestNode;

/**
 * The HTTP face against clients that do what well-behaved ones never do, on raw sockets to a real node (TEST
 * bundle, real engine, real Netty on loopback): pipelining, half-sent requests, slow-loris heads, readers that stop
 * reading, abrupt closes, oversized and unauthenticated bodies refused on their head, browser attacks (text/plain
 * bodies, a foreign {@code Host}, a foreign {@code Origin}), too many connections, requests past their time.
 */
class HttpHostileClientTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  /** The shared node's idle timeout: short, so half-open connections are seen closed quickly. */
  private static final Duration IDLE = Duration.ofSeconds(1);
  private static TestNode node;

  @TempDir
  static Path dir;

  @BeforeAll
  static void start() {
    node = TestNode.start("--http-idle-timeout=" + IDLE.toMillis() + "ms", "--http-max-unsent-tokens=16", "--max-message-bytes=64k",
        "--http-cors-origins=http://app.example");
  }

  @AfterAll
  static void stop() {
    node.close();
  }

  @AfterEach
  void normalSpeed() {
    node.runtime().beforeStep(() -> {});
  }

  private static String host() {
    return host(node);
  }

  private static String host(TestNode n) {
    return "127.0.0.1:" + n.node().httpPort();
  }

  private static RawHttp connect() throws IOException {
    return RawHttp.connect(node.node().httpPort());
  }

  private static String chat(int maxTokens, boolean stream) {
    ObjectNode body = JSON.createObjectNode().put("model", "test").put("max_tokens", maxTokens).put("temperature", 0)
        .put("ignore_eos", true).put("stream", stream);
    body.putArray("messages").addObject().put("role", "user").put("content", "Tell me everything.");
    return body.toString();
  }

  /** Each engine step sleeps {@code millis} and is counted in {@code steps}. */
  private static void slowSteps(TestNode n, int millis, AtomicInteger steps) {
    n.runtime().beforeStep(() -> {
      steps.incrementAndGet();
      try {
        Thread.sleep(millis);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
  }

  /** Waits until {@code n}'s engine holds no request and no KV block, at most 20 s. */
  private static void awaitIdleEngine(TestNode n) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while ((n.numBlocksInUse() > 0 || n.backend().stats().numRunning() + n.backend().stats().numWaiting() > 0) && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertEquals(0, n.backend().stats().numRunning() + n.backend().stats().numWaiting(), "no request left in the engine");
    assertEquals(0, n.numBlocksInUse(), "every KV block free");
  }

  private static void awaitSteps(AtomicInteger steps, int atLeast) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (steps.get() < atLeast && System.nanoTime() < deadline) Thread.sleep(5);
    assertTrue(steps.get() >= atLeast, "the engine ran " + steps.get() + " steps");
  }

  private static JsonNode assertError(RawHttp.Response r, int status) {
    assertEquals(status, r.status(), r.body());
    JsonNode error = r.json().path("error");
    assertFalse(error.path("message").asText().isEmpty(), "OpenAI's error body: " + r.body());
    assertTrue(error.has("type") && error.has("code") && error.has("param"), r.body());
    return error;
  }

  // ---- the cost of a request before it reaches the engine ----

  @Test
  void overLongString_isRefusedWhileParsing_namingItsPath() throws Exception {
    try (TestNode small = TestNode.start("--max-prompt-chars=1000"); RawHttp c = RawHttp.connect(small.node().httpPort())) {
      ObjectNode body = JSON.createObjectNode().put("max_tokens", 2);
      body.putArray("messages").addObject().put("role", "user").putArray("content").addObject().put("type", "text").put("text", "x".repeat(1001));
      c.send(RawHttp.post("/v1/chat/completions", host(small), body.toString()));
      JsonNode error = assertError(c.read(), 400);
      assertEquals("messages[0].content[0].text", error.path("param").asText(), error.toString());
      assertTrue(error.path("message").asText().contains("1,001 characters") && error.path("message").asText().contains("(max-prompt-chars)"),
          error.toString());
    }
  }

  // ---- HTTP/1.1: pipelining, keep-alive ----

  @Test
  void pipelined_requestsInOneWrite_areAnsweredInOrder() throws Exception {
    try (RawHttp c = connect()) {
      c.send(RawHttp.post("/v1/chat/completions", host(), chat(3, false))
          + RawHttp.post("/v1/chat/completions", host(), chat(5, true))
          + RawHttp.get("/v1/models", host())
          + RawHttp.post("/v1/completions", host(), "{\"prompt\": \"Say\", \"max_tokens\": 2, \"temperature\": 0, \"ignore_eos\": true}"));
      RawHttp.Response first = c.read();
      assertEquals(200, first.status(), first.body());
      assertEquals(3, first.json().path("usage").path("completion_tokens").asInt(), first.body());
      RawHttp.Response second = c.read();
      assertEquals(200, second.status());
      assertTrue(second.header("content-type").startsWith("text/event-stream"), second.headers().toString());
      assertEquals("[DONE]", second.events().getLast(), second.body());
      int chunks = 0;
      for (String e : second.events()) if (!e.equals("[DONE]")) chunks++;
      assertTrue(chunks >= 1, second.body());
      RawHttp.Response third = c.read();
      assertEquals("list", third.json().path("object").asText(), third.body());
      RawHttp.Response fourth = c.read();
      assertEquals("text_completion", fourth.json().path("object").asText(), fourth.body());
      assertEquals(2, fourth.json().path("usage").path("completion_tokens").asInt());
    }
  }

  @Test
  void pipelined_moreRequestsThanTheQueueHolds_allAnsweredInOrder() throws Exception {
    int numRequests = 40; // past the per-connection queue: reading pauses, then resumes
    StringBuilder all = new StringBuilder();
    for (int i = 0; i < numRequests; i++) all.append(RawHttp.post("/v1/chat/completions", host(), chat(1 + i % 4, false)));
    try (RawHttp c = connect()) {
      c.send(all.toString());
      for (int i = 0; i < numRequests; i++) {
        RawHttp.Response r = c.read();
        assertEquals(200, r.status(), "request " + i + ": " + r.body());
        assertEquals(1 + i % 4, r.json().path("usage").path("completion_tokens").asInt(), "request " + i + " answered in its place");
      }
    }
    awaitIdleEngine(node);
  }

  @Test
  void pipelined_bodiesPastTheBodyLimitInAll_pauseReading_andAreAllAnsweredInOrder() throws Exception {
    int numRequests = 5; // 40 KiB each against the node's 64 KiB body limit: reading pauses after the second waits
    StringBuilder all = new StringBuilder();
    for (int i = 0; i < numRequests; i++) {
      String padded = "{" + " ".repeat(40 * 1024) + chat(1 + i, false).substring(1); // JSON whitespace: no field, no token
      all.append(RawHttp.post("/v1/chat/completions", host(), padded));
    }
    try (RawHttp c = connect()) {
      c.send(all.toString());
      for (int i = 0; i < numRequests; i++) {
        RawHttp.Response r = c.read();
        assertEquals(200, r.status(), "request " + i + ": " + r.body());
        assertEquals(1 + i, r.json().path("usage").path("completion_tokens").asInt(), "request " + i + " answered in its place");
      }
    }
  }

  @Test
  void pipelined_unreadAnswers_nextStartsOnlyWhenWritable_thenResumesInOrder() throws Exception {
    // A client pipelining GETs while reading nothing: the node stops answering (and reading) once its answers are not
    // read (the channel unwritable), instead of buffering one answer per request, and goes on when the client reads.
    int numRequests = 3000;
    try (RawHttp c = RawHttp.connect(node.node().httpPort(), 4096)) {
      Thread sender = Thread.ofPlatform().daemon().start(() -> {
        try {
          for (int i = 0; i < numRequests; i++) c.send(RawHttp.get(i % 2 == 0 ? "/" : "/v1/models", host()));
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      });
      Thread.sleep(IDLE.toMillis() / 3); // reads nothing meanwhile (within the read-stall timeout)
      for (int i = 0; i < numRequests; i++) {
        RawHttp.Response r = c.read();
        assertEquals(200, r.status(), "request " + i);
        assertEquals(i % 2 == 1, r.header("content-type").startsWith("application/json"), "request " + i + " answered in its place");
      }
      sender.join(5_000);
    }
    // An answer that is not read (the channel unwritable): the request pipelined behind it waits, it is not answered
    // into the outbound buffer; the read-stall timeout then closes the connection.
    ObjectNode big = (ObjectNode) JSON.readTree(chat(300, false));
    big.put("logprobs", true).put("top_logprobs", 20);
    long generatedBefore = node.backend().stats().numGeneratedTokens();
    try (RawHttp unread = RawHttp.connect(node.node().httpPort(), 2048)) {
      unread.send(RawHttp.post("/v1/chat/completions", host(), big.toString()) + RawHttp.post("/v1/chat/completions", host(), chat(20, false)));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (node.backend().stats().numGeneratedTokens() - generatedBefore < 300 && System.nanoTime() < deadline) Thread.sleep(5);
      Thread.sleep(IDLE.toMillis() / 2);
      awaitIdleEngine(node);
      assertEquals(300, node.backend().stats().numGeneratedTokens() - generatedBefore, "the second request waits for the first answer to be read");
      assertTrue(unread.closedWithin(IDLE.multipliedBy(3)), "a client that reads none of its answer is closed after the idle timeout");
    }
  }

  @Test
  void keepAlive_oneConnectionServesSeveralRequests_thenClosesWhenIdle() throws Exception {
    try (RawHttp c = connect()) {
      for (int i = 0; i < 3; i++) {
        c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, i == 1)));
        RawHttp.Response r = c.read();
        assertEquals(200, r.status(), r.body());
        assertNull(r.header("connection"), "kept alive: " + r.headers());
        Thread.sleep(IDLE.toMillis() / 3);
      }
      assertTrue(c.closedWithin(IDLE.multipliedBy(4)), "an idle keep-alive connection is closed after --http-idle-timeout");
    }
  }

  // ---- clients that go away ----

  @Test
  void clientThatCloses_endsItsRequestWithinSteps_streamingAndNot() throws Exception {
    for (boolean stream : new boolean[] {false, true}) {
      AtomicInteger steps = new AtomicInteger();
      slowSteps(node, 10, steps);
      long generatedBefore = node.backend().stats().numGeneratedTokens();
      int stepsAtClose;
      try (RawHttp c = connect()) {
        c.send(RawHttp.post("/v1/chat/completions", host(), chat(400, stream)));
        if (stream) {
          RawHttp.Response head = c.readHead();
          assertEquals(200, head.status());
          assertNotNull(c.readChunk(), "a first chunk");
        } else {
          awaitSteps(steps, 5);
        }
        stepsAtClose = steps.get();
      }
      awaitIdleEngine(node);
      int after = steps.get() - stepsAtClose;
      assertTrue(after < 10, (stream ? "streaming: " : "non-streaming: ") + after + " steps ran after the client left (400 tokens asked)");
      assertTrue(node.backend().stats().numGeneratedTokens() - generatedBefore < 100, "tokens stopped");
      node.runtime().beforeStep(() -> {});
    }
  }

  @Test
  void clientThatCloses_abortsEveryChoiceOfItsRequest() throws Exception {
    AtomicInteger steps = new AtomicInteger();
    slowSteps(node, 10, steps);
    ObjectNode body = (ObjectNode) JSON.readTree(chat(400, true));
    body.put("n", 3).put("temperature", 1.0).put("seed", 7);
    int stepsAtClose;
    try (RawHttp c = connect()) {
      c.send(RawHttp.post("/v1/chat/completions", host(), body.toString()));
      assertEquals(200, c.readHead().status());
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (node.backend().stats().numRunning() < 3 && System.nanoTime() < deadline) Thread.sleep(5);
      assertEquals(3, node.backend().stats().numRunning(), "one engine request per choice");
      assertNotNull(c.readChunk());
      stepsAtClose = steps.get();
    }
    awaitIdleEngine(node);
    assertTrue(steps.get() - stepsAtClose < 10, (steps.get() - stepsAtClose) + " steps ran after the client left");
  }

  @Test
  void readerThatStopsReading_hasItsRequestEnded_andTheNodeServesOthers() throws Exception {
    long generatedBefore = node.backend().stats().numGeneratedTokens();
    ObjectNode body = (ObjectNode) JSON.readTree(chat(900, true));
    body.put("logprobs", true).put("top_logprobs", 20);
    try (RawHttp stalled = RawHttp.connect(node.node().httpPort(), 2048)) {
      stalled.send(RawHttp.post("/v1/chat/completions", host(), body.toString()));
      // Reads nothing: the node's socket buffer, Netty's outbound buffer, then the request's queue fill up.
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (node.backend().stats().numGeneratedTokens() == generatedBefore && System.nanoTime() < deadline) Thread.sleep(5);
      awaitIdleEngine(node);
      long generated = node.backend().stats().numGeneratedTokens() - generatedBefore;
      assertTrue(generated < 300, generated + " tokens generated for a client that reads nothing (900 asked)");
      try (RawHttp other = connect()) {
        RawHttp.Response r = other.send(RawHttp.post("/v1/chat/completions", host(), chat(4, false))).read();
        assertEquals(200, r.status(), r.body());
      }
      assertTrue(stalled.closedWithin(Duration.ofSeconds(10)), "the stalled stream's connection is closed");
    }
    body.put("stream", false);
    try (RawHttp unread = RawHttp.connect(node.node().httpPort(), 2048)) {
      unread.send(RawHttp.post("/v1/chat/completions", host(), body.toString())); // a whole answer of ~1.5 MB, never read
      Thread.sleep(IDLE.multipliedBy(6).toMillis());
      awaitIdleEngine(node);
      assertTrue(unread.closedWithin(IDLE.multipliedBy(2)), "a client that reads none of its answer is closed after the idle timeout");
    }
  }

  // ---- timeouts ----

  @Test
  void idleTimeout_closesHalfSentAndSlowLorisRequests_butNotOneWaitingForItsAnswer() throws Exception {
    try (RawHttp halfSent = connect()) {
      halfSent.send("POST /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo");
      assertTrue(halfSent.closedWithin(IDLE.multipliedBy(4)), "a half-sent body is closed");
    }
    try (RawHttp loris = connect()) {
      String head = "GET /v1/models HTTP/1.1\r\nHost: " + host() + "\r\nX-Slow: " + "a".repeat(200);
      long start = System.nanoTime();
      boolean closed = false;
      for (int i = 0; i < head.length() && !closed; i++) {
        try {
          loris.send(head.substring(i, i + 1)); // a byte each 100 ms: never idle, never done
        } catch (IOException e) {
          closed = true;
          break;
        }
        closed = loris.closedWithin(Duration.ofMillis(100));
      }
      assertTrue(closed, "a head trickled in byte by byte is closed");
      assertTrue(System.nanoTime() - start < IDLE.multipliedBy(4).toNanos(), "within the idle timeout, not when the bytes stop");
    }
    AtomicInteger steps = new AtomicInteger();
    slowSteps(node, 25, steps);
    try (RawHttp waiting = connect()) {
      RawHttp.Response r = waiting.send(RawHttp.post("/v1/chat/completions", host(), chat(120, false))).read(); // ~3 s > the idle timeout
      assertEquals(200, r.status(), r.body());
      assertEquals(120, r.json().path("usage").path("completion_tokens").asInt());
    }
  }

  @Test
  void requestTimeout_endsTheRequestWithOpenAisError_504BeforeTheFirstByte_anErrorEventAfter() throws Exception {
    try (TestNode timed = TestNode.start("--http-request-timeout=1s", "--http-allowed-hosts=node.example")) {
      AtomicInteger steps = new AtomicInteger();
      slowSteps(timed, 20, steps);
      try (RawHttp c = RawHttp.connect(timed.node().httpPort())) {
        RawHttp.Response whole = c.send(RawHttp.post("/v1/chat/completions", host(timed), chat(500, false))).read();
        JsonNode error = assertError(whole, 504);
        assertTrue(error.path("message").asText().contains("timed out"), error.toString());
        RawHttp.Response streamed = c.send(RawHttp.post("/v1/chat/completions", host(timed), chat(500, true))).read();
        assertEquals(200, streamed.status());
        List<String> events = streamed.events();
        assertEquals("[DONE]", events.getLast(), streamed.body());
        JsonNode last = JSON.readTree(events.get(events.size() - 2));
        assertTrue(last.path("error").path("message").asText().contains("timed out"), streamed.body());
        for (String e : events) assertFalse(e.contains("\"finish_reason\":\"length\""), "a timeout is not a finish: " + e);
        ObjectNode twoChoices = (ObjectNode) JSON.readTree(chat(500, false));
        twoChoices.put("n", 2);
        assertError(c.send(RawHttp.post("/v1/chat/completions", "node.example:8080", twoChoices.toString())).read(), 504);
      }
      awaitIdleEngine(timed);
    }
  }

  // ---- refusals on the request head ----

  @Test
  void bodyTooLarge_413OnTheHeadBeforeTheBody_andForChunkedBodiesAsTheyPassTheLimit() throws Exception {
    try (RawHttp c = connect()) {
      c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n");
      JsonNode error = assertError(c.timeout(Duration.ofSeconds(10)).read(), 413);
      assertTrue(error.path("message").asText().contains("bytes"), error.toString());
      assertTrue(c.closedWithin(Duration.ofSeconds(5)), "a refusal closes the connection");
    }
    try (RawHttp c = connect()) {
      c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      String chunk = Integer.toHexString(8192) + "\r\n" + "x".repeat(8192) + "\r\n";
      try {
        for (int i = 0; i < 12; i++) c.send(chunk); // 96 KiB, past the 64 KiB limit; never the last chunk
      } catch (IOException closedMeanwhile) {
        // the node answered and closed while we were still sending
      }
      assertError(c.timeout(Duration.ofSeconds(10)).read(), 413);
    }
  }

  @Test
  void unauthenticated_401OnTheHeadBeforeTheBody() throws Exception {
    Path tenants = Files.writeString(dir.resolve("tenants.properties"), "alice.key-sha256=" + Tenants.sha256("alice-key") + "\n");
    try (TestNode secured = TestNode.start("--tenants=" + tenants); RawHttp c = RawHttp.connect(secured.node().httpPort())) {
      c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: " + host(secured) + "\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n");
      assertError(c.timeout(Duration.ofSeconds(10)).read(), 401);
      assertTrue(c.closedWithin(Duration.ofSeconds(5)));
      try (RawHttp alice = RawHttp.connect(secured.node().httpPort())) {
        RawHttp.Response r = alice.send(RawHttp.post("/v1/chat/completions", "attacker.example", chat(2, false), "Authorization: Bearer alice-key")).read();
        assertEquals(200, r.status(), "with authentication any Host is accepted: " + r.body());
      }
    }
  }

  @Test
  void routeAndMethod_decidedOnTheHead() throws Exception {
    try (RawHttp c = connect()) {
      c.send("POST /v2/nothing HTTP/1.1\r\nHost: " + host() + "\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n");
      assertError(c.timeout(Duration.ofSeconds(10)).read(), 404);
    }
    try (RawHttp c = connect()) {
      RawHttp.Response r = c.send(RawHttp.get("/v1/chat/completions", host())).read();
      assertError(r, 405);
      assertEquals("POST", r.header("allow"));
    }
  }

  @Test
  void bodyOnGetOrOptions_refusedWith400OnTheHead() throws Exception {
    try (RawHttp c = connect()) { // no credentials are taken on OPTIONS: a body would be buffered for anyone
      c.send("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nOrigin: http://app.example\r\n"
          + "Access-Control-Request-Method: POST\r\nContent-Length: 16777216\r\n\r\n");
      JsonNode error = assertError(c.timeout(Duration.ofSeconds(10)).read(), 400);
      assertEquals("body", error.path("param").asText(), error.toString());
      assertTrue(c.closedWithin(Duration.ofSeconds(5)), "a refusal closes the connection");
    }
    try (RawHttp c = connect()) {
      assertError(c.send("GET /v1/models HTTP/1.1\r\nHost: " + host() + "\r\nContent-Length: 2\r\n\r\n{}").read(), 400);
    }
    try (RawHttp c = connect()) {
      assertError(c.send("GET / HTTP/1.1\r\nHost: " + host() + "\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").read(), 400);
    }
    try (RawHttp c = connect()) {
      assertEquals(200, c.send("GET /v1/models HTTP/1.1\r\nHost: " + host() + "\r\nContent-Length: 0\r\n\r\n").read().status());
    }
  }

  @Test
  void malformedChunkedBody_refusedWith400AndClosed_notServed() throws Exception {
    try (RawHttp c = connect()) {
      String json = chat(2, false);
      c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
          + Integer.toHexString(json.length()) + "\r\n" + json + "\r\nzz-not-a-size\r\n\r\n");
      assertError(c.timeout(Duration.ofSeconds(10)).read(), 400);
      assertTrue(c.closedWithin(Duration.ofSeconds(5)), "a refusal closes the connection");
    }
  }

  @Test
  void requestsPipelinedAfterConnectionClose_areNotStarted() throws Exception {
    for (String last : List.of("GET /v1/models HTTP/1.1\r\nHost: " + host() + "\r\nConnection: close\r\n\r\n",
        "GET /v1/models HTTP/1.0\r\nHost: " + host() + "\r\n\r\n")) {
      long generatedBefore = node.backend().stats().numGeneratedTokens();
      try (RawHttp c = connect()) {
        c.send(last + RawHttp.post("/v1/chat/completions", host(), chat(20, false)));
        RawHttp.Response first = c.read();
        assertEquals(200, first.status(), first.body());
        assertTrue(c.closedWithin(Duration.ofSeconds(5)), "the connection closes after its last request's answer, with nothing more");
      }
      Thread.sleep(200);
      assertEquals(generatedBefore, node.backend().stats().numGeneratedTokens(), "the request after the last one never ran: " + last);
    }
    // The last request's large answer left unread (its write pending): the request pipelined behind it must not start.
    ObjectNode big = (ObjectNode) JSON.readTree(chat(300, false));
    big.put("logprobs", true).put("top_logprobs", 20);
    long generatedBefore = node.backend().stats().numGeneratedTokens();
    try (RawHttp unread = RawHttp.connect(node.node().httpPort(), 2048)) {
      unread.send(RawHttp.post("/v1/chat/completions", host(), big.toString(), "Connection: close")
          + RawHttp.post("/v1/chat/completions", host(), chat(20, false)));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (node.backend().stats().numGeneratedTokens() - generatedBefore < 300 && System.nanoTime() < deadline) Thread.sleep(5);
      Thread.sleep(IDLE.toMillis() / 2); // while the first answer waits to be read
      awaitIdleEngine(node);
      assertEquals(300, node.backend().stats().numGeneratedTokens() - generatedBefore, "only the last request ran");
    }
  }

  @Test
  void duplicateHost_refusedWith400() throws Exception {
    try (RawHttp c = connect()) {
      JsonNode error = assertError(c.send(RawHttp.get("/v1/models", host(), "Host: attacker.example")).read(), 400);
      assertEquals("host", error.path("param").asText(), error.toString());
    }
  }

  @Test
  void headerTooLarge_431() throws Exception {
    try (RawHttp c = connect()) {
      c.send("GET /v1/models HTTP/1.1\r\nHost: " + host() + "\r\nX-Big: " + "a".repeat(20_000) + "\r\n\r\n");
      assertError(c.timeout(Duration.ofSeconds(10)).read(), 431);
    }
  }

  @Test
  void contentType_onlyJson_textPlainRefusedWith415() throws Exception {
    try (RawHttp c = connect()) {
      RawHttp.Response r = c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Content-Type: text/plain", "X-Request-Id: plain-1")).read();
      assertError(r, 415);
      assertEquals("plain-1", r.header("x-request-id"), "a refusal names the request it refuses");
    }
    try (RawHttp c = connect()) {
      assertError(c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Content-Type: application/x-www-form-urlencoded")).read(), 415);
    }
    try (RawHttp c = connect()) {
      String noType = "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nContent-Length: " + chat(2, false).length() + "\r\n\r\n" + chat(2, false);
      assertError(c.send(noType).read(), 415);
    }
    try (RawHttp c = connect()) {
      RawHttp.Response r = c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Content-Type: application/json; charset=utf-8")).read();
      assertEquals(200, r.status(), r.body());
    }
  }

  @Test
  void host_foreignNameRefusedWith403_ownNamesServed() throws Exception {
    try (RawHttp c = connect()) {
      JsonNode error = assertError(c.send(RawHttp.post("/v1/chat/completions", "attacker.example", chat(2, false))).read(), 403);
      assertTrue(error.path("message").asText().contains("attacker.example"), error.toString());
    }
    try (RawHttp c = connect()) {
      assertError(c.send(RawHttp.get("/v1/models", "attacker.example:" + node.node().httpPort())).read(), 403);
    }
    for (String own : List.of("localhost:" + node.node().httpPort(), "127.0.0.1", "[::1]:" + node.node().httpPort(), "LOCALHOST")) {
      try (RawHttp c = connect()) {
        assertEquals(200, c.send(RawHttp.get("/v1/models", own)).read().status(), own);
      }
    }
    try (RawHttp c = connect()) {
      assertError(c.send("GET /v1/models HTTP/1.1\r\n\r\n").read(), 400); // HTTP/1.1 without Host
    }
  }

  @Test
  void origin_foreignRefused_sameOriginServed_allowedOriginGetsCors() throws Exception {
    try (RawHttp c = connect()) {
      assertError(c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Origin: http://evil.example")).read(), 403);
    }
    try (RawHttp c = connect()) {
      RawHttp.Response r = c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Origin: http://" + host())).read();
      assertEquals(200, r.status(), "the chat page's own origin: " + r.body());
    }
    try (RawHttp c = connect()) {
      RawHttp.Response r = c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Origin: http://app.example")).read();
      assertEquals(200, r.status(), r.body());
      assertEquals("http://app.example", r.header("access-control-allow-origin"));
      assertTrue(r.header("vary").toLowerCase().contains("origin"), r.headers().toString());
      RawHttp.Response preflight = c.send("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nOrigin: http://app.example\r\n"
          + "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n\r\n").read();
      assertEquals(204, preflight.status(), preflight.headers().toString());
      assertEquals("http://app.example", preflight.header("access-control-allow-origin"));
      assertTrue(preflight.header("access-control-allow-methods").contains("POST"));
      assertTrue(preflight.header("access-control-allow-headers").contains("authorization"));
      RawHttp.Response sdk = c.send("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nOrigin: http://app.example\r\n"
          + "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type, x-stainless-os\r\n\r\n").read();
      assertEquals(204, sdk.status(), sdk.headers().toString());
      assertTrue(sdk.header("access-control-allow-headers").contains("x-stainless-os"), "the asked headers are allowed: " + sdk.headers());
    }
    try (RawHttp c = connect()) { // a refusal past the origin check: the allowed origin's page may read why
      RawHttp.Response r = c.send(RawHttp.post("/v1/chat/completions", host(), chat(2, false), "Origin: http://app.example", "Content-Type: text/plain")).read();
      assertError(r, 415);
      assertEquals("http://app.example", r.header("access-control-allow-origin"), r.headers().toString());
    }
    try (RawHttp c = connect()) {
      assertError(c.send("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: " + host() + "\r\nOrigin: http://evil.example\r\n"
          + "Access-Control-Request-Method: POST\r\n\r\n").read(), 403);
    }
  }

  @Test
  void connectionCap_connectionsOverItAreClosedAtOnce() throws Exception {
    try (TestNode capped = TestNode.start("--http-max-connections=2")) {
      List<RawHttp> open = new ArrayList<>();
      try {
        for (int i = 0; i < 2; i++) {
          RawHttp c = RawHttp.connect(capped.node().httpPort());
          open.add(c);
          assertEquals(200, c.send(RawHttp.get("/v1/models", host(capped))).read().status());
        }
        try (RawHttp third = RawHttp.connect(capped.node().httpPort())) {
          assertTrue(third.closedWithin(Duration.ofSeconds(5)), "the third connection is closed at once");
        }
        open.removeFirst().close();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        int status = 0;
        while (status != 200 && System.nanoTime() < deadline) {
          try (RawHttp again = RawHttp.connect(capped.node().httpPort())) {
            status = again.send(RawHttp.get("/v1/models", host(capped))).read().status();
          } catch (IOException closedBecauseTheSlotIsNotFreeYet) {
            Thread.sleep(50);
          }
        }
        assertEquals(200, status, "a slot frees when a connection closes");
      } finally {
        for (RawHttp c : open) c.close();
      }
    }
  }
}
