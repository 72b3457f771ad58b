package sphinxserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.PutImageResponse;
import dev.sphinxserve.proto.v1.Role;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.client.ScriptedSphinxServer.Reply;

/** The client against real grpc-java servers on loopback ({@link ScriptedSphinxServer}). */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class SphinxClientTest {
  private static final RetrySettings FAST_RETRY =
      new RetrySettings(4, Duration.ofMillis(5), 2.0, 0.5, Duration.ofMillis(50));

  @RegisterExtension
  final ScriptedSphinxServer node = new ScriptedSphinxServer();
  @RegisterExtension
  final ScriptedSphinxServer node2 = new ScriptedSphinxServer();

  private final List<SphinxClient> clients = new CopyOnWriteArrayList<>();

  @AfterEach
  void closeClients() {
    clients.forEach(SphinxClient::close);
  }

  private SphinxClient client(SphinxClient.Builder builder) {
    SphinxClient c = builder.build();
    clients.add(c);
    return c;
  }

  private SphinxClient client() {
    return client(SphinxClient.builder().target(node.target()).retry(FAST_RETRY));
  }

  private static final Image IMAGE = Image.of(TestImages.png(64, 48));

  private static GenerateRequest request(String question) {
    return GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.USER)
        .addContent(Content.newBuilder().setImage(IMAGE.bytes()))
        .addContent(Content.newBuilder().setText(question))).build();
  }

  /** A subscriber that asks for one message at a time and records what it gets. */
  private static final class OneAtATime implements Flow.Subscriber<GenerateResponse> {
    final List<GenerateResponse> received = new CopyOnWriteArrayList<>();
    final CompletableFuture<Void> done = new CompletableFuture<>();
    volatile Flow.Subscription subscription;
    final int cancelAfter;

    OneAtATime(int cancelAfter) {
      this.cancelAfter = cancelAfter;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
      subscription = s;
      s.request(1);
    }

    @Override
    public void onNext(GenerateResponse item) {
      received.add(item);
      if (received.size() == cancelAfter) {
        subscription.cancel();
        done.complete(null);
      } else {
        subscription.request(1);
      }
    }

    @Override
    public void onError(Throwable t) {
      done.completeExceptionally(t);
    }

    @Override
    public void onComplete() {
      done.complete(null);
    }
  }

  @Test
  void generate_publisherStreamsDeltasInOrder_oneAtATime() {
    node.script(Reply.answer("There are ", "two ", "dogs."));
    OneAtATime subscriber = new OneAtATime(Integer.MAX_VALUE);
    client().generate(request("Count the dogs")).subscribe(subscriber);
    subscriber.done.join();
    List<String> texts = subscriber.received.stream().map(GenerateResponse::getText).toList();
    assertEquals(List.of("There are ", "two ", "dogs.", ""), texts);
    assertEquals(FinishReason.STOP, subscriber.received.getLast().getFinishReason());
    assertEquals("req-1", subscriber.received.getFirst().getRequestId());
  }

  @Test
  void generate_cancelStopsTheNodeStream() throws Exception {
    node.script(Reply.slow(Duration.ofMillis(100), "a", "b", "c", "d", "e", "f"));
    OneAtATime subscriber = new OneAtATime(1);
    client().generate(request("q")).subscribe(subscriber);
    subscriber.done.join();
    for (int i = 0; i < 100 && node.cancellations() == 0; i++) {
      Thread.sleep(20);
    }
    assertEquals(1, node.cancellations());
    assertEquals(1, subscriber.received.size());
  }

  @Test
  void generate_callbacksAssembleTheAnswer() {
    node.script(Reply.answer("A man", "[0.10,0.20,0.30,0.40]", " rides."));
    List<String> deltas = new CopyOnWriteArrayList<>();
    GenerationHandle handle = client().generate(request("q"), new GenerationListener() {
      @Override
      public void onResponse(GenerateResponse response) {
        deltas.add(response.getText());
      }
    });
    Answer answer = handle.answer().join();
    assertEquals("A man[0.10,0.20,0.30,0.40] rides.", answer.text());
    assertEquals(List.of("A man", "[0.10,0.20,0.30,0.40]", " rides.", ""), deltas);
    assertEquals(FinishReason.STOP, answer.finishReason());
    assertEquals(3, answer.usage().getCompletionTokens());
    assertEquals("man", answer.outputs().regions().getFirst().label());
  }

  @Test
  void ask_sendsTheImageAndTheDigestHeader() {
    Answer answer = client().ask(IMAGE, "Describe the image");
    assertEquals(ScriptedSphinxServer.DEFAULT_ANSWER, answer.text());
    ScriptedSphinxServer.Received received = node.received().getFirst();
    assertEquals(IMAGE.bytes(), received.image().orElseThrow().getImage());
    assertEquals(IMAGE.digest(), received.imageDigestHeader());
    assertEquals(64, IMAGE.digest().length());
  }

  @Test
  void generate_withoutImageSendsNoDigestHeader() {
    client().ask(GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.USER)
        .addContent(Content.newBuilder().setText("hi"))).build());
    assertEquals(null, node.received().getFirst().imageDigestHeader());
  }

  @Test
  void generate_retriesUnavailableAndExhaustedBeforeTheFirstToken() {
    node.script(Reply.fail(Status.Code.UNAVAILABLE), Reply.fail(Status.Code.RESOURCE_EXHAUSTED),
        Reply.answer("fine"));
    Answer answer = client().ask(request("q"));
    assertEquals("fine", answer.text());
    assertEquals(3, node.generateCalls());
  }

  @Test
  void generate_sendsTheCallersTraceContextOnEveryAttempt() {
    node.script(Reply.fail(Status.Code.UNAVAILABLE), Reply.answer("fine"));
    SpanContext caller = SpanContext.create("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
        TraceFlags.getSampled(), TraceState.getDefault());
    try (Scope ignored = Context.root().with(Span.wrap(caller)).makeCurrent()) {
      assertEquals("fine", client().ask(request("q")).text());
    }
    assertEquals(2, node.received().size(), "a retry, from the client's retry thread");
    Metadata.Key<String> traceparent = Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER);
    for (ScriptedSphinxServer.Received r : node.received()) {
      assertEquals("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", r.headers().get(traceparent));
    }
  }

  @Test
  void generate_withoutACurrentSpan_sendsNoTraceparent() {
    node.script(Reply.answer("fine"));
    client().ask(request("q"));
    assertEquals(null, node.received().getFirst().headers().get(Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER)));
  }

  @Test
  void generate_neverRetriesAfterTheFirstToken() {
    node.script(Reply.deltasThenFail(Status.Code.UNAVAILABLE, "partial "), Reply.answer("duplicate"));
    List<String> deltas = new CopyOnWriteArrayList<>();
    GenerationHandle handle = client().generate(request("q"), new GenerationListener() {
      @Override
      public void onResponse(GenerateResponse response) {
        deltas.add(response.getText());
      }
    });
    StatusRuntimeException e = assertInstanceOf(StatusRuntimeException.class,
        assertThrows(Exception.class, () -> handle.answer().join()).getCause());
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertEquals(List.of("partial "), deltas);
    assertEquals(1, node.generateCalls());
  }

  @Test
  void generate_doesNotRetryOtherCodes() {
    node.script(Reply.fail(Status.Code.INVALID_ARGUMENT));
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client().ask(request("q")));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertEquals(1, node.generateCalls());
  }

  @Test
  void generate_givesUpAfterMaxAttempts() {
    for (int i = 0; i < 10; i++) {
      node.script(Reply.fail(Status.Code.UNAVAILABLE));
    }
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client().ask(request("q")));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertEquals(FAST_RETRY.maxAttempts(), node.generateCalls());
  }

  @Test
  void generate_deadlineCoversTheWholeCall() {
    node.script(Reply.slow(Duration.ofSeconds(2), "late"));
    SphinxClient client = client(SphinxClient.builder().target(node.target()).retry(FAST_RETRY)
        .defaultDeadline(Duration.ofMillis(300)));
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.ask(request("q")));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
  }

  @Test
  void circuitBreaker_opensAndThenFailsFastWithoutCallingTheNode() {
    for (int i = 0; i < 4; i++) {
      node.script(Reply.fail(Status.Code.INTERNAL));
    }
    SphinxClient client = client(SphinxClient.builder().target(node.target()).retry(RetrySettings.disabled())
        .circuitBreaker(new CircuitBreakerSettings(true, 50, 4, 4, Duration.ofMinutes(1), 1)));
    for (int i = 0; i < 4; i++) {
      assertEquals(Status.Code.INTERNAL, assertThrows(StatusRuntimeException.class,
          () -> client.ask(request("q"))).getStatus().getCode());
    }
    assertEquals(CircuitBreaker.State.OPEN, client.circuitState(node.target()));
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> client.ask(request("q")));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertInstanceOf(CallNotPermittedException.class, e.getCause());
    assertEquals(4, node.generateCalls());
  }

  @Test
  void circuitBreaker_ignoresTheRequestsOwnErrors() {
    for (int i = 0; i < 6; i++) {
      node.script(Reply.fail(Status.Code.INVALID_ARGUMENT));
    }
    SphinxClient client = client(SphinxClient.builder().target(node.target()).retry(RetrySettings.disabled())
        .circuitBreaker(new CircuitBreakerSettings(true, 50, 4, 4, Duration.ofMinutes(1), 1)));
    for (int i = 0; i < 6; i++) {
      assertThrows(StatusRuntimeException.class, () -> client.ask(request("q")));
    }
    assertEquals(CircuitBreaker.State.CLOSED, client.circuitState(node.target()));
  }

  @Test
  void loadBalancing_roundRobinAcrossTwoNodes() {
    SphinxClient client = client(SphinxClient.builder().targets(List.of(node.target(), node2.target()))
        .retry(FAST_RETRY));
    for (int i = 0; i < 6; i++) {
      client.ask(request("q" + i));
    }
    assertEquals(3, node.generateCalls());
    assertEquals(3, node2.generateCalls());
  }

  @Test
  void imageAffinity_sendsEveryRequestAboutOneImageToOneNode() {
    SphinxClient client = client(SphinxClient.builder().targets(List.of(node.target(), node2.target()))
        .imageAffinity(true).retry(FAST_RETRY));
    List<Image> images = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      images.add(Image.of(TestImages.png(40 + i, 30)));
    }
    for (int turn = 0; turn < 3; turn++) {
      for (Image image : images) {
        client.ask(image, "turn " + turn);
      }
    }
    Set<String> onFirst = new HashSet<>();
    node.received().forEach(r -> onFirst.add(r.imageDigestHeader()));
    Set<String> onSecond = new HashSet<>();
    node2.received().forEach(r -> onSecond.add(r.imageDigestHeader()));
    assertEquals(48, node.received().size() + node2.received().size());
    assertTrue(Collections.disjoint(onFirst, onSecond), "no image reached both nodes");
    assertEquals(16, onFirst.size() + onSecond.size());
    assertFalse(onFirst.isEmpty() || onSecond.isEmpty(), "16 images spread over both nodes");
  }

  @Test
  void imageAffinity_withATargetThatIsNotHostPortAmongSeveral_isRefused() {
    SphinxClient.Builder builder = SphinxClient.builder().targets(List.of("dns:///nodes:50051", node.target()))
        .imageAffinity(true);
    assertThrows(IllegalArgumentException.class, builder::build);
  }

  @Test
  void loadBalancing_failsOverToTheLiveNodeAndOpensTheDeadOnesBreaker() throws IOException {
    String dead = ScriptedSphinxServer.deadTarget();
    SphinxClient client = client(SphinxClient.builder().targets(List.of(dead, node.target())).retry(FAST_RETRY)
        .circuitBreaker(new CircuitBreakerSettings(true, 50, 2, 2, Duration.ofMinutes(1), 1)));
    for (int i = 0; i < 6; i++) {
      assertEquals(ScriptedSphinxServer.DEFAULT_ANSWER, client.ask(request("q" + i)).text());
    }
    assertEquals(6, node.generateCalls());
    assertEquals(CircuitBreaker.State.OPEN, client.circuitState(dead));
  }

  @Test
  void putImage_sendsTheDigestHeaderAndReturnsTheSize() {
    SphinxClient client = client();
    PutImageResponse first = client.putImage(IMAGE);
    assertEquals(IMAGE.digest(), first.getDigest());
    assertEquals(64, first.getWidth());
    assertEquals(48, first.getHeight());
    assertEquals(false, first.getCached());
    assertTrue(client.putImage(IMAGE).getCached());
    assertEquals(IMAGE.digest(), node.putImageHeaders().getFirst().get(ImageDigests.HEADER));
  }

  @Test
  void putImage_reportsInvalidArgumentWithoutRetrying() {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> client().putImage(Image.of(new byte[] {1, 2, 3})));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertEquals(1, node.putImageHeaders().size());
  }

  @Test
  void unaryCalls_retryOnUnavailable() throws IOException {
    SphinxClient client = client(SphinxClient.builder().targets(List.of(ScriptedSphinxServer.deadTarget(),
        node.target())).retry(FAST_RETRY));
    assertEquals("scripted", client.modelInfo().getBundleId());
    assertEquals("scripted", client.modelInfo().getBundleId());
  }

  @Test
  void health_reportsEveryTarget() throws IOException {
    String dead = ScriptedSphinxServer.deadTarget();
    node2.setServing(ServingStatus.NOT_SERVING);
    List<TargetHealth> report = client(SphinxClient.builder()
        .targets(List.of(node.target(), node2.target(), dead))).health("");
    assertEquals(List.of(ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.UNKNOWN),
        report.stream().map(TargetHealth::status).toList());
    assertTrue(report.get(2).error().startsWith("UNAVAILABLE"), report.get(2).error());
  }
}
