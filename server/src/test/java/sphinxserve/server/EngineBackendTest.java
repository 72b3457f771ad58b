package sphinxserve.server;

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
}
