package sphinxserve.server.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.server.generate.GenerationSink;
import sphinxserve.server.generate.PreparedRequest;
import sphinxserve.server.telemetry.RequestTelemetry;
import sphinxserve.server.testing.NodeExtension;

/** The engine behind Generate: admission limits, end to end on real Netty, the real engine and ORT. */
final class EngineBackendTest {

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension("--max-running-requests=1", "--max-waiting-requests=1");

  private static GenerateRequest ask(String id, int maxTokens) {
    return GenerateRequest.newBuilder().setRequestId(id)
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("Count the circles.")))
        .setSampling(SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true)).build();
  }

  @Test
  void submit_queueFull_resourceExhausted() throws Exception {
    NODE.runtime().beforeStep(() -> {
      try {
        Thread.sleep(2);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    Context.CancellableContext held = Context.current().withCancellation();
    try {
      // One running (its first token arrived), one waiting behind it: both limits reached.
      Iterator<GenerateResponse> running = held.call(() -> SphinxGrpc.newBlockingStub(NODE.channel()).generate(ask("running", 500)));
      running.next();
      Iterator<GenerateResponse> waiting = held.call(() -> SphinxGrpc.newBlockingStub(NODE.channel()).generate(ask("waiting", 4)));
      long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (NODE.backend().stats().numWaiting() < 1 && System.nanoTime() < end) Thread.sleep(2);
      assertEquals(1, NODE.backend().stats().numRunning());
      assertEquals(1, NODE.backend().stats().numWaiting());

      var e = assertThrows(StatusRuntimeException.class, () -> SphinxGrpc.newBlockingStub(NODE.channel())
          .withDeadlineAfter(10, TimeUnit.SECONDS).generate(ask("refused", 4)).hasNext());
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.getStatus().toString());
      assertTrue(e.getStatus().getDescription().contains("1 requests are already waiting"), e.getStatus().getDescription());
      assertEquals(1, NODE.backend().stats().numRunning(), "the refusal touched nothing running");
    } finally {
      held.cancel(null);
      NODE.runtime().beforeStep(() -> {});
    }
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (NODE.backend().stats().numRunning() + NODE.backend().stats().numWaiting() > 0 && System.nanoTime() < end) Thread.sleep(5);
    assertEquals(0, NODE.backend().stats().numRunning() + NODE.backend().stats().numWaiting(), "cancelled calls leave the engine");
  }

  /**
   * The race a client can win: it cancels after the service's {@code isCancelled()} check but before the backend
   * registers the request, so the cancel handler's abort finds nothing. The backend sees the cancellation once
   * registered and aborts: the request ends within a step instead of running to {@code max_tokens}.
   */
  @Test
  void submit_cancelledBeforeRegistration_abortsTheRequestInsteadOfOrphaningIt() throws Exception {
    NODE.runtime().beforeStep(() -> {
      try {
        Thread.sleep(5); // 500 tokens would take at least 2.5 s
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    try {
      long tokensBefore = NODE.backend().stats().numGeneratedTokens();
      java.util.concurrent.CompletableFuture<Object> end = new java.util.concurrent.CompletableFuture<>();
      GenerationSink alreadyCancelled = new GenerationSink() {
        @Override
        public void emit(GenerateResponse response) {
          if (response.getFinishReason() != dev.sphinxserve.proto.v1.FinishReason.FINISH_REASON_UNSPECIFIED) end.complete(response);
        }

        @Override
        public void fail(Status status) {
          end.complete(status);
        }

        @Override
        public boolean isCancelled() {
          return true;
        }
      };
      NODE.backend().abort(alreadyCancelled); // the cancel handler ran first: nothing registered yet, a no-op
      NODE.backend().submit(new PreparedRequest("orphan?", new int[] {1, 5, 6, 7, 8}, java.util.Optional.empty(),
          SamplingParams.newBuilder().setIgnoreEos(true).build(), 500, 0, System.nanoTime(), Long.MAX_VALUE, "",
          RequestTelemetry.current(), null), alreadyCancelled);
      GenerateResponse last = (GenerateResponse) end.get(30, TimeUnit.SECONDS);
      assertEquals(dev.sphinxserve.proto.v1.FinishReason.ABORTED, last.getFinishReason());
      long generated = NODE.backend().stats().numGeneratedTokens() - tokensBefore;
      assertTrue(generated < 50, "aborted early, not run to max_tokens: " + generated);
    } finally {
      NODE.runtime().beforeStep(() -> {});
    }
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (NODE.numBlocksInUse() > 0 && System.nanoTime() < end) Thread.sleep(5);
    assertEquals(0, NODE.numBlocksInUse(), "its blocks were freed");
  }
}
