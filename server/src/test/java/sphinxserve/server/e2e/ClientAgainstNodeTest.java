package sphinxserve.server.e2e;

import static java.util.concurrent.TimeUnit.MILLISECONDS;
import static java.util.concurrent.TimeUnit.SECONDS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.client.Answer;
import sphinxserve.client.CircuitBreakerSettings;
import sphinxserve.client.Conversation;
import sphinxserve.client.GenerationHandle;
import sphinxserve.client.GenerationListener;
import sphinxserve.client.Image;
import sphinxserve.client.RetrySettings;
import sphinxserve.client.SphinxClient;
import sphinxserve.server.testing.TestImages;
import sphinxserve.server.testing.TestNode;

/**
 * The client library ({@code sphinxserve.client}) against real nodes: Netty on loopback, the real engine and ONNX
 * Runtime over the TEST bundle. Issue 6's acceptance: streaming, a conversation by digest with the NOT_FOUND resend,
 * retries before the first token but not after, the circuit breaker opening, load balancing over two nodes.
 *
 * <p>The failures are real ones: a node refusing work because its queue is full, a node stopped mid-stream, a
 * stopped node's port refusing connections. To hold a node busy, its runtime waits up to 20 ms before each engine
 * step until the test releases it ({@link #throttle}); the tests wait for conditions (first token, engine gauges,
 * a call's status) rather than for time. {@link CallLog} on a client's channel shows each attempt the client made.
 */
final class ClientAgainstNodeTest {

  @RegisterExtension
  static final Nodes NODES = new Nodes();

  private static final SamplingParams GREEDY_8 = SamplingParams.newBuilder().setMaxTokens(8).setIgnoreEos(true).build();
  /** A generation that takes 20 ms × 500 steps on a throttled node: busy until the test says otherwise. */
  private static final SamplingParams LONG = SamplingParams.newBuilder().setMaxTokens(500).setIgnoreEos(true).build();
  private static final Duration DEADLINE = Duration.ofSeconds(30);

  private static TestNode nodeA;
  private static TestNode nodeB;

  private final List<AutoCloseable> toClose = new ArrayList<>();

  @BeforeAll
  static void startNodes() {
    nodeA = NODES.startShared();
    nodeB = NODES.startShared();
  }

  @AfterEach
  void closeClients() throws Exception {
    for (AutoCloseable c : toClose.reversed()) c.close();
  }

  // ---- Streaming ----

  @Test
  void generate_publisher_deliversDeltasInOrderThenFinishReasonAndUsage() throws Exception {
    byte[] image = TestImages.png(TestImages.noise(48, 32, 601));
    GenerateRequest request = imageRequest(image, "Describe the image.", GREEDY_8);
    SphinxClient client = track(SphinxClient.builder().target(nodeA.target()).defaultDeadline(DEADLINE).build());

    Recorder recorder = new Recorder();
    client.generate(request).subscribe(recorder);
    List<GenerateResponse> responses = recorder.done.get(30, SECONDS);

    GenerateResponse last = responses.getLast();
    assertEquals(FinishReason.LENGTH, last.getFinishReason());
    assertEquals(8, last.getUsage().getCompletionTokens());
    assertEquals(nodeA.runtime().spec().vision().tokensPerImage(), last.getUsage().getImageTokens());
    for (GenerateResponse r : responses.subList(0, responses.size() - 1)) {
      assertEquals(FinishReason.FINISH_REASON_UNSPECIFIED, r.getFinishReason(), "only the last message finishes");
      assertFalse(r.hasUsage(), "usage only on the last message");
    }
    // In order: the same greedy request straight through gRPC gives the same tokens in the same order.
    ManagedChannel raw = track(NettyChannelBuilder.forAddress("127.0.0.1", nodeA.port()).usePlaintext().build());
    List<Integer> direct = new ArrayList<>();
    SphinxGrpc.newBlockingStub(raw).withDeadlineAfter(30, SECONDS).generate(request)
        .forEachRemaining(r -> direct.addAll(r.getTokenIdsList()));
    assertEquals(8, direct.size());
    assertEquals(direct, responses.stream().flatMap(r -> r.getTokenIdsList().stream()).toList());
  }

  @Test
  void ask_returnsTheConcatenatedDeltas() throws Exception {
    byte[] bytes = TestImages.png(TestImages.noise(40, 40, 602));
    String question = "Detect all circles in the image.";
    SphinxClient client = track(SphinxClient.builder().target(nodeA.target()).defaultDeadline(DEADLINE)
        .defaultSampling(GREEDY_8).build());

    Recorder recorder = new Recorder();
    client.generate(imageRequest(bytes, question, GREEDY_8)).subscribe(recorder);
    List<GenerateResponse> deltas = recorder.done.get(30, SECONDS);
    Answer answer = client.ask(Image.of(bytes), question);

    assertEquals(String.join("", deltas.stream().map(GenerateResponse::getText).toList()), answer.text());
    assertEquals(FinishReason.LENGTH, answer.finishReason());
    assertEquals(8, answer.usage().getCompletionTokens());
    assertTrue(answer.usage().getImageCacheHit(), "the second request found the image the first one encoded");
  }

  // ---- Conversation ----

  @Test
  void conversation_sendsTheBytesOnceThenTheDigest_andResendsTheBytesWhenTheNodeForgotTheImage() throws Exception {
    Image image = Image.of(TestImages.png(TestImages.noise(40, 30, 603)));
    CallLog log = new CallLog();
    SphinxClient client = track(SphinxClient.builder().channel("node-a", track(log.channelTo(nodeA)))
        .defaultDeadline(DEADLINE).defaultSampling(GREEDY_8).retry(RetrySettings.disabled()).build());
    Conversation chat = client.conversation(image);
    long hits = nodeA.images().numHits();
    long misses = nodeA.images().numMisses();

    Answer first = chat.ask("What is in the image?");
    assertFalse(first.usage().getImageCacheHit());
    assertEquals(Content.KindCase.IMAGE, imageOf(log.attempts().get(0)).getKindCase(), "turn 1 sends the bytes");
    assertEquals(misses + 1, nodeA.images().numMisses(), "turn 1 encoded the image");

    Answer second = chat.ask("Where is it?");
    assertTrue(second.usage().getImageCacheHit());
    assertEquals(2, log.attempts().size());
    GenerateRequest turn2 = log.attempts().get(1).request().get();
    assertEquals(3, turn2.getMessagesCount(), "the whole conversation so far");
    assertEquals(image.digest(), imageOf(log.attempts().get(1)).getImageDigest(), "turn 2 sends only the digest");
    assertEquals(1, turn2.getMessagesList().stream().flatMap(m -> m.getContentList().stream())
        .filter(c -> c.getKindCase() != Content.KindCase.TEXT).count(), "one image reference, no bytes");
    assertEquals(hits + 1, nodeA.images().numHits(), "turn 2 found the image by digest");
    assertEquals(misses + 1, nodeA.images().numMisses());

    nodeA.images().invalidate(image.digest());
    Answer third = chat.ask("And now?");
    assertEquals(FinishReason.LENGTH, third.finishReason());
    assertFalse(third.usage().getImageCacheHit(), "encoded again from the resent bytes");
    List<CallLog.Attempt> turn3 = log.attempts().subList(2, log.attempts().size());
    assertEquals(2, turn3.size(), "the digest, then the bytes: " + turn3);
    assertEquals(image.digest(), imageOf(turn3.get(0)).getImageDigest());
    assertEquals(Status.Code.NOT_FOUND, turn3.get(0).status().get().getCode());
    assertEquals(Content.KindCase.IMAGE, imageOf(turn3.get(1)).getKindCase());
    assertEquals(Status.Code.OK, turn3.get(1).status().get().getCode());
    assertEquals(5, turn3.get(1).request().get().getMessagesCount(), "the same turn, with the bytes");
    assertEquals(6, chat.history().size(), "three completed turns");
  }

  // ---- Retries ----

  @Test
  void generate_refusedWhileTheNodeIsFull_retriesWithBackoffAndSucceedsOnceCapacityFrees() throws Exception {
    TestNode node = NODES.start("--max-running-requests=1", "--max-waiting-requests=1");
    CountDownLatch release = throttle(node);
    SphinxClient blockers = track(SphinxClient.builder().target(node.target()).defaultDeadline(DEADLINE)
        .retry(RetrySettings.disabled()).build());
    Recorder running = new Recorder();
    blockers.generate(textRequest("Count to five hundred.", LONG)).subscribe(running);
    running.firstToken.get(30, SECONDS);
    GenerationHandle waiting = blockers.generate(textRequest("Count to five hundred again.", LONG), new GenerationListener() { });
    awaitTrue("one request runs and one waits", () -> node.backend().stats().numRunning() == 1
        && node.backend().stats().numWaiting() == 1);

    CallLog log = new CallLog();
    SphinxClient client = track(SphinxClient.builder().channel("full-node", track(log.channelTo(node)))
        .defaultDeadline(DEADLINE).circuitBreaker(CircuitBreakerSettings.disabled())
        .retry(new RetrySettings(50, Duration.ofMillis(20), 1.5, 0.2, Duration.ofMillis(200))).build());
    CompletableFuture<Answer> answer = client.generate(textRequest("Hi", GREEDY_8), new GenerationListener() { }).answer();
    awaitTrue("the node refused the first attempt", () -> !log.attempts().isEmpty());
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, log.attempts().getFirst().status().get(30, SECONDS).getCode());

    running.cancel();
    waiting.cancel();
    release.countDown();
    Answer done = answer.get(30, SECONDS);

    assertEquals(FinishReason.LENGTH, done.finishReason());
    assertEquals(8, done.usage().getCompletionTokens());
    List<CallLog.Attempt> attempts = log.attempts();
    assertTrue(attempts.size() >= 2, "retried: " + attempts.size());
    for (CallLog.Attempt a : attempts.subList(0, attempts.size() - 1)) {
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, a.status().get().getCode());
    }
    assertEquals(Status.Code.OK, attempts.getLast().status().get().getCode());
  }

  @Test
  void generate_connectionLostAfterTheFirstToken_surfacesUnavailableWithoutRetrying() throws Exception {
    TestNode node = NODES.start();
    CountDownLatch release = throttle(node);
    TcpRelay network = track(new TcpRelay(node.port()));
    CallLog log = new CallLog();
    SphinxClient client = track(SphinxClient.builder().channel("node", track(log.channelTo(network.port())))
        .defaultDeadline(DEADLINE).circuitBreaker(CircuitBreakerSettings.disabled())
        .retry(new RetrySettings(5, Duration.ofMillis(20), 1.0, 0.0, Duration.ofMillis(20))).build());

    Recorder recorder = new Recorder();
    client.generate(textRequest("Count to five hundred.", LONG)).subscribe(recorder);
    recorder.firstToken.get(30, SECONDS);
    network.cut();

    ExecutionException e = assertThrows(ExecutionException.class, () -> recorder.done.get(30, SECONDS));
    StatusRuntimeException error = assertInstanceOf(StatusRuntimeException.class, e.getCause());
    // UNAVAILABLE is a code the client retries before the first token (see the test above); after it, never.
    assertEquals(Status.Code.UNAVAILABLE, error.getStatus().getCode(), error.getStatus().toString());
    assertFalse(recorder.responses.isEmpty());
    assertEquals(1, log.attempts().size(), "a partly streamed answer is not retried");
    release.countDown();
    awaitTrue("the node aborted the orphaned generation", () -> node.backend().stats().numRunning() == 0);
  }

  @Test
  void generate_nodeStoppedAfterTheFirstToken_surfacesTheErrorWithoutRetrying() throws Exception {
    TestNode node = NODES.start("--drain-seconds=0");
    CountDownLatch release = throttle(node);
    CallLog log = new CallLog();
    SphinxClient client = track(SphinxClient.builder().channel("node", track(log.channelTo(node)))
        .defaultDeadline(DEADLINE).circuitBreaker(CircuitBreakerSettings.disabled())
        .retry(new RetrySettings(5, Duration.ofMillis(20), 1.0, 0.0, Duration.ofMillis(20))).build());

    Recorder recorder = new Recorder();
    client.generate(textRequest("Count to five hundred.", LONG)).subscribe(recorder);
    recorder.firstToken.get(30, SECONDS);
    node.close(); // no drain: shutdownNow resets the stream
    release.countDown();

    ExecutionException e = assertThrows(ExecutionException.class, () -> recorder.done.get(30, SECONDS));
    StatusRuntimeException error = assertInstanceOf(StatusRuntimeException.class, e.getCause());
    // grpc-java's shutdownNow resets the stream with HTTP/2 CANCEL, which the client sees as CANCELLED.
    assertEquals(Status.Code.CANCELLED, error.getStatus().getCode(), error.getStatus().toString());
    assertFalse(recorder.responses.isEmpty());
    assertEquals(1, log.attempts().size(), "a partly streamed answer is not retried");
  }

  // ---- Circuit breaker ----

  @Test
  void breaker_stoppedNode_opensAfterTheConfiguredFailuresThenFailsFastWithoutCalling() {
    TestNode stopped = NODES.start();
    stopped.close();
    CallLog log = new CallLog();
    SphinxClient client = track(SphinxClient.builder().channel("stopped", track(log.channelTo(stopped)))
        .defaultDeadline(DEADLINE).defaultSampling(GREEDY_8).retry(RetrySettings.disabled())
        .circuitBreaker(new CircuitBreakerSettings(true, 50, 3, 3, Duration.ofMinutes(1), 1)).build());

    for (int i = 0; i < 3; i++) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.ask(textRequest("Hi", GREEDY_8)));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertFalse(e.getCause() instanceof CallNotPermittedException, "call " + i + " reached the network");
    }
    assertEquals(3, log.attempts().size());
    assertEquals(CircuitBreaker.State.OPEN, client.circuitState("stopped"));

    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.ask(textRequest("Hi", GREEDY_8)));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertInstanceOf(CallNotPermittedException.class, e.getCause());
    assertEquals(3, log.attempts().size(), "the open breaker made no call");
  }

  @Test
  void breaker_openForOneTarget_callsGoToTheOtherNode() {
    TestNode stopped = NODES.start();
    stopped.close();
    CallLog log = new CallLog();
    SphinxClient client = track(SphinxClient.builder()
        .channel("stopped", track(log.channelTo(stopped)))
        .target(nodeA.target())
        .defaultDeadline(DEADLINE).defaultSampling(GREEDY_8)
        .retry(new RetrySettings(3, Duration.ofMillis(10), 1.0, 0.0, Duration.ofMillis(10)))
        .circuitBreaker(new CircuitBreakerSettings(true, 50, 2, 2, Duration.ofMinutes(1), 1)).build());
    long finishedA = nodeA.backend().stats().numFinished();

    for (int i = 0; i < 6; i++) {
      assertEquals(FinishReason.LENGTH, client.ask(textRequest("Hi", GREEDY_8)).finishReason(), "call " + i);
    }

    assertEquals(2, log.attempts().size(), "the stopped node got calls until its breaker opened");
    assertTrue(log.attempts().stream().allMatch(a -> a.status().join().getCode() == Status.Code.UNAVAILABLE));
    assertEquals(CircuitBreaker.State.OPEN, client.circuitState("stopped"));
    assertEquals(CircuitBreaker.State.CLOSED, client.circuitState(nodeA.target()));
    assertEquals(6, nodeA.backend().stats().numFinished() - finishedA, "every call answered by node A");
  }

  // ---- Load balancing ----

  /**
   * A tenant over its generated-token rate is refused with RESOURCE_EXHAUSTED and {@code retry-after-ms}; the
   * client sends its API key and waits the hint rather than its own 1 ms backoff, so its single retry succeeds.
   */
  @Test
  void ask_overTheTenantsTokenRate_waitsTheNodesRetryAfterHint() throws Exception {
    java.nio.file.Path tenants = java.nio.file.Files.createTempFile("tenants", ".properties");
    tenants.toFile().deleteOnExit();
    java.nio.file.Files.writeString(tenants, "svc.key-sha256=" + sha256("svc-key") + "\nsvc.tokens-per-second=20\n");
    TestNode node = NODES.start("--tenants=" + tenants);
    SphinxClient client = track(SphinxClient.builder().target(node.target()).defaultDeadline(DEADLINE).bearerToken("svc-key")
        .retry(new RetrySettings(2, Duration.ofMillis(1), 1.0, 0.0, Duration.ofMillis(1))).build());
    GenerateRequest forty = GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.USER)
        .addContent(Content.newBuilder().setText("Describe the image."))).setSampling(SamplingParams.newBuilder()
        .setMaxTokens(40).setIgnoreEos(true)).build();
    assertEquals(40, client.ask(forty).usage().getCompletionTokens()); // 1-2 s of token debt at 20/s
    long start = System.nanoTime();
    assertEquals(40, client.ask(forty).usage().getCompletionTokens(), "refused once, then retried after the hint");
    assertTrue(System.nanoTime() - start > java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(500), "waited for the debt");

    SphinxClient anonymous = track(SphinxClient.builder().target(node.target()).defaultDeadline(DEADLINE).build());
    var e = org.junit.jupiter.api.Assertions.assertThrows(RuntimeException.class, () -> anonymous.ask(forty));
    assertEquals(io.grpc.Status.Code.UNAUTHENTICATED, io.grpc.Status.fromThrowable(e).getCode(), e.toString());
  }

  private static String sha256(String key) throws java.security.NoSuchAlgorithmException {
    return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
        .digest(key.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
  }

  @Test
  void targets_twoNodes_requestsAreSpreadRoundRobin() {
    SphinxClient client = track(SphinxClient.builder().targets(List.of(nodeA.target(), nodeB.target()))
        .defaultDeadline(DEADLINE).retry(RetrySettings.disabled()).build());
    long finishedA = nodeA.backend().stats().numFinished();
    long finishedB = nodeB.backend().stats().numFinished();

    for (int i = 0; i < 6; i++) {
      assertEquals(FinishReason.LENGTH, client.ask(textRequest("Hi " + i, GREEDY_8)).finishReason());
    }

    assertEquals(3, nodeA.backend().stats().numFinished() - finishedA, "node A");
    assertEquals(3, nodeB.backend().stats().numFinished() - finishedB, "node B");
  }

  // ---- Helpers ----

  /**
   * Makes each engine step of {@code node} wait up to 20 ms for the returned latch: while it is closed the node
   * generates at most 50 tokens a second, so a {@link #LONG} generation keeps it busy; counting it down restores
   * full speed.
   */
  private static CountDownLatch throttle(TestNode node) {
    CountDownLatch release = new CountDownLatch(1);
    node.runtime().beforeStep(() -> {
      try {
        release.await(20, MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    return release;
  }

  /** Waits up to 20 s for {@code condition}, checking every millisecond. */
  private static void awaitTrue(String what, BooleanSupplier condition) {
    long end = System.nanoTime() + SECONDS.toNanos(20);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > end) throw new AssertionError("timed out waiting until " + what);
      LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
    }
  }

  private <T extends AutoCloseable> T track(T closeable) {
    toClose.add(closeable);
    return closeable;
  }

  private ManagedChannel track(ManagedChannel channel) {
    toClose.add(() -> {
      channel.shutdownNow();
      channel.awaitTermination(5, SECONDS);
    });
    return channel;
  }

  /** The image content (bytes or digest) an attempt's first message carried. */
  private static Content imageOf(CallLog.Attempt attempt) throws Exception {
    return attempt.request().get(5, SECONDS).getMessages(0).getContentList().stream()
        .filter(c -> c.getKindCase() != Content.KindCase.TEXT).findFirst().orElseThrow();
  }

  private static GenerateRequest textRequest(String question, SamplingParams sampling) {
    return GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.USER)
        .addContent(Content.newBuilder().setText(question))).setSampling(sampling).build();
  }

  /** The request {@code SphinxClient.ask(image, question)} sends: the image, then the question. */
  private static GenerateRequest imageRequest(byte[] image, String question, SamplingParams sampling) {
    return GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.USER)
        .addContent(Content.newBuilder().setImage(ByteString.copyFrom(image)))
        .addContent(Content.newBuilder().setText(question))).setSampling(sampling).build();
  }

  /** Subscribes with a demand of one message at a time and records what arrives. */
  private static final class Recorder implements Flow.Subscriber<GenerateResponse> {
    final List<GenerateResponse> responses = new CopyOnWriteArrayList<>();
    final CompletableFuture<GenerateResponse> firstToken = new CompletableFuture<>();
    final CompletableFuture<List<GenerateResponse>> done = new CompletableFuture<>();
    private volatile Flow.Subscription subscription;

    @Override
    public void onSubscribe(Flow.Subscription s) {
      subscription = s;
      s.request(1);
    }

    @Override
    public void onNext(GenerateResponse response) {
      responses.add(response);
      if (response.getTokenIdsCount() > 0) firstToken.complete(response);
      subscription.request(1);
    }

    @Override
    public void onError(Throwable error) {
      firstToken.completeExceptionally(error);
      done.completeExceptionally(error);
    }

    @Override
    public void onComplete() {
      firstToken.completeExceptionally(new AssertionError("completed without a token"));
      done.complete(List.copyOf(responses));
    }

    void cancel() {
      subscription.cancel();
    }
  }
}
