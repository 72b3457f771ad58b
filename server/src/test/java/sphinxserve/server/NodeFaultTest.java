package sphinxserve.server;

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
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import sphinxserve.server.testing.TestImages;
import sphinxserve.server.testing.TestNode;

/**
 * Faults injected into a real node (Netty on loopback, the real engine and ONNX Runtime, the TEST bundle): a
 * runtime that throws at one step, returns NaN rows, fails for good or is slow, and a client that goes away at
 * every point of a call's life. After each: no block held, no request left in the engine, no stream hanging,
 * health as it should be.
 */
final class NodeFaultTest {

  private static final SamplingParams LONG = SamplingParams.newBuilder().setMaxTokens(600).setIgnoreEos(true).build();
  private static final SamplingParams SHORT = SamplingParams.newBuilder().setMaxTokens(12).setIgnoreEos(true).build();

  /**
   * How long a test lets the server take to see a client's cancellation (HTTP/2 RST_STREAM, then the call's cancel
   * handler) before it lets the engine move on: milliseconds on loopback, with room for a loaded CI machine.
   */
  private static final long SERVER_SEES_CANCEL_MILLIS = 300;

  private TestNode node;

  @AfterEach
  void close() {
    if (node != null) node.close();
  }

  @Test
  void runtimeThrowsAtOneStep_failsThatStepsCallWithInternal_andTheNodeServesOn() throws Exception {
    node = TestNode.start();
    java.util.concurrent.atomic.AtomicInteger steps = new java.util.concurrent.atomic.AtomicInteger();
    node.runtime().beforeStep(() -> {
      if (steps.incrementAndGet() == 4) throw new IllegalStateException("injected at step 4");
    });
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> generate(ask(null, LONG)));
    assertEquals(Status.Code.INTERNAL, e.getStatus().getCode(), e.getStatus().toString());
    assertTrue(e.getStatus().getDescription().contains("injected at step 4"), e.getStatus().getDescription());
    assertIdleAndServing();
    assertEquals(FinishReason.LENGTH, generate(ask(null, SHORT)).getLast().getFinishReason());
    assertIdleAndServing();
  }

  @Test
  void nanLogits_failOnlyTheRequestWhoseRowsTheyAre() throws Exception {
    node = TestNode.start();
    int textPrompt = generate(ask(null, SHORT)).getLast().getUsage().getPromptTokens();
    int threshold = textPrompt + SHORT.getMaxTokens() + 1; // the text request never reaches this position
    assertTrue(node.bundle().spec().vision().tokensPerImage() > threshold, "the image request's rows are all past it");
    node.runtime().rewriteRows((step, row) -> {
      if (step.endPosition() > threshold) row[5] = Float.NaN;
    });
    node.runtime().beforeStep(TestSteps.sleep(2));
    CompletableFuture<List<GenerateResponse>> text = CompletableFuture.supplyAsync(() -> generate(ask(null, SHORT)));
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> generate(ask(image(1), SHORT)));
    assertEquals(Status.Code.INTERNAL, e.getStatus().getCode(), e.getStatus().toString());
    assertTrue(e.getStatus().getDescription().contains("NaN"), e.getStatus().getDescription());
    List<GenerateResponse> answer = text.get(60, TimeUnit.SECONDS);
    assertEquals(FinishReason.LENGTH, answer.getLast().getFinishReason());
    assertEquals(SHORT.getMaxTokens(), answer.getLast().getUsage().getCompletionTokens());
    assertIdleAndServing();
  }

  @Test
  void runtimeFailsForGood_healthTurnsNotServing_andTheNodeDrainsAndStops() throws Exception {
    node = TestNode.start();
    node.runtime().beforeStep(() -> {
      throw new IllegalStateException("the device is gone");
    });
    List<Status.Code> codes = new ArrayList<>();
    for (int i = 0; i < sphinxserve.scheduler.Engine.MAX_CONSECUTIVE_FAILED_STEPS + 2; i++) {
      try {
        generate(ask(null, SHORT));
        codes.add(Status.Code.OK);
      } catch (StatusRuntimeException e) {
        codes.add(e.getStatus().getCode());
      }
    }
    assertEquals(Status.Code.INTERNAL, codes.getFirst(), codes.toString());
    assertFalse(codes.contains(Status.Code.OK), codes.toString());
    assertEquals(Status.Code.UNAVAILABLE, codes.getLast(), "refused once the engine failed: " + codes);
    waitUntil(() -> node.node().isTerminated(), "the node stopped by itself");
    assertTrue(node.node().failure().orElseThrow().getMessage().contains("the device is gone"));
    assertEquals(0, node.numBlocksInUse());
  }

  @Test
  void engineFailure_reportsNotServingOnHealthWhileTheNodeDrains() throws Exception {
    node = TestNode.start("--drain-seconds=30");
    // How load balancers see a node's health: a Watch stream, opened while it serves.
    List<ServingStatus> watched = new java.util.concurrent.CopyOnWriteArrayList<>();
    HealthGrpc.newStub(node.channel()).watch(HealthCheckRequest.newBuilder().setService(SphinxGrpc.SERVICE_NAME).build(),
        new io.grpc.stub.StreamObserver<>() {
          @Override
          public void onNext(io.grpc.health.v1.HealthCheckResponse response) {
            watched.add(response.getStatus());
          }

          @Override
          public void onError(Throwable t) {}

          @Override
          public void onCompleted() {}
        });
    waitUntil(() -> watched.contains(ServingStatus.SERVING), "the watch started");
    CountDownLatch encoding = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    node.runtime().beforeStep(() -> {
      throw new StackOverflowError("injected");
    });
    // A call whose image is being encoded keeps the drain open while the test reads health.
    node.runtime().beforeEncode(views -> {
      encoding.countDown();
      await(release);
    });
    try {
      CompletableFuture<Status.Code> pending = CompletableFuture.supplyAsync(
          () -> codeOf(Context.current().withCancellation(), ask(image(2), SHORT)));
      assertTrue(encoding.await(30, TimeUnit.SECONDS));
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> generate(ask(null, SHORT)));
      assertEquals(Status.Code.INTERNAL, e.getStatus().getCode(), e.getStatus().toString());
      waitUntil(() -> watched.contains(ServingStatus.NOT_SERVING), "health turned NOT_SERVING: " + watched);
      assertFalse(node.node().isTerminated(), "still draining the call that waits for its image");
      release.countDown();
      assertEquals(Status.Code.UNAVAILABLE, pending.get(60, TimeUnit.SECONDS), "the engine refuses it: retry elsewhere");
    } finally {
      release.countDown();
    }
    waitUntil(() -> node.node().isTerminated(), "the node stopped by itself");
    assertInstanceOf(StackOverflowError.class, node.node().failure().orElseThrow());
    assertEquals(0, node.numBlocksInUse());
  }

  // ---- clients that go away ------------------------------------------------------------------------------

  @Test
  void cancelWhileTheImageIsEncoded_nothingReachesTheEngine() throws Exception {
    node = TestNode.start();
    CountDownLatch encoding = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    node.runtime().beforeEncode(views -> {
      encoding.countDown();
      await(release);
    });
    long stepsBefore = node.backend().stats().numSteps();
    Context.CancellableContext call = Context.current().withCancellation();
    CompletableFuture<Status.Code> outcome = CompletableFuture.supplyAsync(() -> codeOf(call, ask(image(3), LONG)));
    assertTrue(encoding.await(30, TimeUnit.SECONDS));
    call.cancel(null);
    assertEquals(Status.Code.CANCELLED, outcome.get(30, TimeUnit.SECONDS));
    Thread.sleep(SERVER_SEES_CANCEL_MILLIS); // the client's end is immediate; the server's follows the RST_STREAM
    release.countDown();
    waitUntil(() -> node.images().lookup(sphinxserve.server.image.ImageDigest.of(imageBytes(3))).isPresent(), "the encoding finished");
    Thread.sleep(50);
    assertEquals(stepsBefore, node.backend().stats().numSteps(), "the cancelled call never ran a step");
    assertIdleAndServing();
  }

  @Test
  void cancelWhileWaitingForAdmission_leavesTheQueue_andTheRunningCallGoesOn() throws Exception {
    node = TestNode.start("--max-running-requests=1");
    node.runtime().beforeStep(TestSteps.sleep(3));
    Context.CancellableContext runningCall = Context.current().withCancellation();
    Context.CancellableContext waitingCall = Context.current().withCancellation();
    try {
      Iterator<GenerateResponse> running = runningCall.call(() -> SphinxGrpc.newBlockingStub(node.channel()).generate(ask(null, LONG)));
      running.next();
      CompletableFuture<Status.Code> waiting = CompletableFuture.supplyAsync(() -> codeOf(waitingCall, ask(null, LONG)));
      waitUntil(() -> node.backend().stats().numWaiting() == 1, "the second call waits");
      waitingCall.cancel(null);
      assertEquals(Status.Code.CANCELLED, waiting.get(30, TimeUnit.SECONDS));
      waitUntil(() -> node.backend().stats().numWaiting() == 0, "the cancelled call left the queue");
      assertEquals(1, node.backend().stats().numRunning(), "the running call goes on");
      assertTrue(running.hasNext());
    } finally {
      runningCall.cancel(null);
    }
    assertIdleAndServing();
  }

  @Test
  void cancelDuringPrefill_endsTheRequestWithinAStep() throws Exception {
    node = TestNode.start();
    CountDownLatch inStep = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    node.runtime().beforeStep(() -> {
      inStep.countDown();
      await(release);
    });
    long stepsBefore = node.backend().stats().numSteps();
    Context.CancellableContext call = Context.current().withCancellation();
    CompletableFuture<Status.Code> outcome = CompletableFuture.supplyAsync(() -> codeOf(call, ask(image(4), LONG)));
    assertTrue(inStep.await(30, TimeUnit.SECONDS), "the prefill step started");
    call.cancel(null);
    assertEquals(Status.Code.CANCELLED, outcome.get(30, TimeUnit.SECONDS));
    Thread.sleep(SERVER_SEES_CANCEL_MILLIS); // the abort is queued before the step in flight ends
    node.runtime().beforeStep(() -> {});
    release.countDown();
    assertIdleAndServing();
    assertTrue(node.backend().stats().numSteps() - stepsBefore <= 2, "at most the step in flight and one more ran: "
        + (node.backend().stats().numSteps() - stepsBefore));
  }

  @Test
  void cancelWhileDecoding_endsTheRequestEarly_andFreesItsBlocks() throws Exception {
    node = TestNode.start();
    node.runtime().beforeStep(TestSteps.sleep(5)); // 600 tokens would take at least 3 s
    long tokensBefore = node.backend().stats().numGeneratedTokens();
    Context.CancellableContext call = Context.current().withCancellation();
    Iterator<GenerateResponse> stream = call.call(() -> SphinxGrpc.newBlockingStub(node.channel()).generate(ask(null, LONG)));
    for (int i = 0; i < 3; i++) stream.next();
    assertTrue(node.numBlocksInUse() > 0, "the running request holds blocks");
    call.cancel(null);
    assertIdleAndServing();
    long generated = node.backend().stats().numGeneratedTokens() - tokensBefore;
    assertTrue(generated < 100, "the request ended early: " + generated + " of " + LONG.getMaxTokens() + " tokens");
  }

  @Test
  void clientGoneAfterTheLastMessage_leavesNothingBehind() throws Exception {
    node = TestNode.start();
    assertEquals(FinishReason.LENGTH, generate(ask(image(5), SHORT)).getLast().getFinishReason());
    node.channel().shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    assertIdleAndServing();
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private void assertIdleAndServing() throws InterruptedException {
    waitUntil(() -> node.backend().stats().numRunning() + node.backend().stats().numWaiting() == 0, "no request left in the engine");
    waitUntil(() -> node.numBlocksInUse() == 0, "every block freed");
    assertEquals(ServingStatus.SERVING, health());
  }

  private ServingStatus health() {
    try (var channel = new AutoCloseableChannel(node.target())) {
      return HealthGrpc.newBlockingStub(channel.channel).withDeadlineAfter(5, TimeUnit.SECONDS)
          .check(HealthCheckRequest.newBuilder().setService(SphinxGrpc.SERVICE_NAME).build()).getStatus();
    } catch (StatusRuntimeException e) {
      return ServingStatus.UNKNOWN; // the server is gone
    }
  }

  /** A channel of its own, so health is read even after the test's channel was shut down. */
  private static final class AutoCloseableChannel implements AutoCloseable {
    final io.grpc.ManagedChannel channel;

    AutoCloseableChannel(String target) {
      channel = io.grpc.netty.NettyChannelBuilder.forTarget(target).usePlaintext().build();
    }

    @Override
    public void close() {
      channel.shutdownNow();
    }
  }

  private List<GenerateResponse> generate(GenerateRequest request) {
    List<GenerateResponse> out = new ArrayList<>();
    SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(60, TimeUnit.SECONDS).generate(request).forEachRemaining(out::add);
    return out;
  }

  /** Runs {@code request} inside {@code call} to its end; the status it ended with. */
  private Status.Code codeOf(Context.CancellableContext call, GenerateRequest request) {
    try {
      call.call(() -> {
        SphinxGrpc.newBlockingStub(node.channel()).generate(request).forEachRemaining(r -> {});
        return null;
      });
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static GenerateRequest ask(Content image, SamplingParams sampling) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(image);
    user.addContent(Content.newBuilder().setText("Detect all circles in the image."));
    return GenerateRequest.newBuilder().addMessages(user).setSampling(sampling).build();
  }

  private static byte[] imageBytes(long seed) {
    return TestImages.png(TestImages.noise(40, 40, 100 + seed));
  }

  private static Content image(long seed) {
    return Content.newBuilder().setImage(ByteString.copyFrom(imageBytes(seed))).build();
  }

  private static void await(CountDownLatch latch) {
    try {
      latch.await(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void waitUntil(BooleanSupplier condition, String what) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > end) throw new AssertionError("not reached in 30 s: " + what);
      Thread.sleep(5);
    }
  }

  /** Step hooks. */
  static final class TestSteps {
    private TestSteps() {}

    /** A hook that makes every step last at least {@code millis}. */
    static Runnable sleep(long millis) {
      return () -> {
        try {
          Thread.sleep(millis);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
    }
  }
}
