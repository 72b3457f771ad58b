package sphinxserve.server.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.server.auth.TenantLimiter;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.grpc.LimitInterceptor;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/** Per-tenant limits on a real node: request and token rates, streams, max_tokens, image size, and the noisy neighbour. */
final class LimitInterceptorTest {

  private static Path tenants() {
    try {
      Path file = Files.createTempFile("tenants", ".properties");
      file.toFile().deleteOnExit();
      StringBuilder sb = new StringBuilder();
      for (String name : List.of("rate", "streams", "tokens", "caps", "noisy", "quiet")) {
        sb.append(name).append(".key-sha256=").append(Tenants.sha256(name + "-key")).append('\n');
      }
      sb.append("""
          rate.requests-per-second = 0.5
          streams.max-streams = 1
          tokens.tokens-per-second = 10
          caps.max-tokens = 8
          caps.max-image-bytes = 1k
          noisy.max-streams = 2
          noisy.requests-per-second = 100
          """);
      Files.writeString(file, sb);
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static final Path TENANTS = tenants();

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension("--tenants=" + TENANTS);

  private static String bearer(String tenant) {
    return "Bearer " + tenant + "-key";
  }

  private static GenerateRequest ask(int maxTokens) {
    return GenerateRequest.newBuilder()
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("Describe the image.")))
        .setSampling(SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true)).build();
  }

  private static GenerateResponse last(Iterator<GenerateResponse> stream) {
    GenerateResponse last = null;
    while (stream.hasNext()) last = stream.next();
    return last;
  }

  private static void assertRetryAfter(StatusRuntimeException e, long min, long max) {
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.getStatus().toString());
    assertNotNull(e.getTrailers(), "trailers");
    String retry = e.getTrailers().get(LimitInterceptor.RETRY_AFTER);
    assertNotNull(retry, "retry-after-ms trailer");
    long millis = Long.parseLong(retry);
    assertTrue(millis >= min && millis <= max, "retry-after-ms " + millis + " in " + min + ".." + max);
  }

  @Test
  void call_overRequestRate_isResourceExhaustedWithRetryAfter() {
    List<StatusRuntimeException> refused = new ArrayList<>();
    for (int i = 0; i < 3; i++) { // one permit per 2 s: at most two of three quick calls straddle a refill
      try {
        AuthInterceptorTest.stub(NODE, bearer("rate")).getModelInfo(GetModelInfoRequest.getDefaultInstance());
      } catch (StatusRuntimeException e) {
        refused.add(e);
      }
    }
    assertTrue(!refused.isEmpty(), "over the request rate");
    assertRetryAfter(refused.getFirst(), 1, 2000);
    assertTrue(refused.getFirst().getStatus().getDescription().contains("(requests-per-second)"), refused.getFirst().getStatus().toString());
  }

  @Test
  void generate_overMaxStreams_isResourceExhaustedUntilOneEnds() {
    NODE.runtime().beforeStep(() -> sleepMillis(5));
    try {
      Iterator<GenerateResponse> open = AuthInterceptorTest.stub(NODE, bearer("streams")).generate(ask(60));
      open.next(); // the stream is admitted and running
      var e = assertThrows(StatusRuntimeException.class, () -> last(AuthInterceptorTest.stub(NODE, bearer("streams")).generate(ask(2))));
      assertRetryAfter(e, TenantLimiter.STREAM_RETRY_AFTER_MILLIS, TenantLimiter.STREAM_RETRY_AFTER_MILLIS);
      assertTrue(e.getStatus().getDescription().contains("(max-streams)"));
      last(open);
    } finally {
      NODE.runtime().beforeStep(() -> {});
    }
    assertEquals(2, last(AuthInterceptorTest.stub(NODE, bearer("streams")).generate(ask(2))).getUsage().getCompletionTokens());
  }

  @Test
  void generate_afterSpendingTheTokenRate_isRefusedUntilRepaid() {
    // 40 tokens at 10/s: the answer is never cut off, but leaves ~3 s of debt.
    assertEquals(40, last(AuthInterceptorTest.stub(NODE, bearer("tokens")).generate(ask(40))).getUsage().getCompletionTokens());
    var e = assertThrows(StatusRuntimeException.class, () -> last(AuthInterceptorTest.stub(NODE, bearer("tokens")).generate(ask(2))));
    assertRetryAfter(e, 1000, 5000);
    assertTrue(e.getStatus().getDescription().contains("(tokens-per-second)"));
  }

  @Test
  void generate_overTenantMaxTokens_isInvalidArgument_andZeroMeansTheCap() {
    var e = assertThrows(StatusRuntimeException.class, () -> last(AuthInterceptorTest.stub(NODE, bearer("caps")).generate(ask(9))));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), "a per-request cap: retrying cannot pass");
    assertEquals("sampling.max_tokens: at most 8 for tenant caps (max-tokens), got 9", e.getStatus().getDescription());
    assertEquals(8, last(AuthInterceptorTest.stub(NODE, bearer("caps")).generate(ask(0))).getUsage().getCompletionTokens());
  }

  @Test
  void putImageAndGenerate_overTenantImageBytes_areInvalidArgument() {
    byte[] big = TestImages.png(TestImages.noise(64, 64, 3));
    assertTrue(big.length > 1024);
    var put = assertThrows(StatusRuntimeException.class, () -> AuthInterceptorTest.stub(NODE, bearer("caps"))
        .putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(big)).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, put.getStatus().getCode());
    assertTrue(put.getStatus().getDescription().startsWith("image: " + big.length + " bytes, at most 1024 for tenant caps"), put.getStatus().toString());
    GenerateRequest withImage = ask(2).toBuilder().setMessages(0, ask(2).getMessages(0).toBuilder()
        .addContent(0, Content.newBuilder().setImage(ByteString.copyFrom(big)))).build();
    var gen = assertThrows(StatusRuntimeException.class, () -> last(AuthInterceptorTest.stub(NODE, bearer("caps")).generate(withImage)));
    assertEquals(Status.Code.INVALID_ARGUMENT, gen.getStatus().getCode());
    assertTrue(gen.getStatus().getDescription().startsWith("messages[0].content[0].image: "), gen.getStatus().toString());
  }

  /**
   * The noisy neighbour: with the engine's running slots scarce ({@code --max-running-requests=4}) and each step
   * slowed to a few milliseconds, "noisy" floods Generate from eight threads; its stream limit (2) leaves room, so
   * "quiet"'s median time to first token stays within twice its solo value (plus a small allowance for a loaded
   * machine). Without the limit the flood would hold every slot and quiet would wait whole answers.
   */
  @Test
  void generate_whileAnotherTenantFloods_keepsTimeToFirstToken() throws Exception {
    NodeExtension node = new NodeExtension("--tenants=" + TENANTS, "--max-running-requests=4").start();
    ExecutorService flood = Executors.newFixedThreadPool(8);
    AtomicBoolean flooding = new AtomicBoolean(true);
    AtomicInteger numRefused = new AtomicInteger();
    AtomicInteger numServed = new AtomicInteger();
    try {
      node.runtime().beforeStep(() -> sleepMillis(4));
      ttftMillis(node, 3); // warm up
      double solo = median(ttftMillis(node, 9));
      for (int t = 0; t < 8; t++) {
        flood.execute(() -> {
          while (flooding.get()) {
            try {
              last(AuthInterceptorTest.stub(node, bearer("noisy")).generate(ask(48)));
              numServed.incrementAndGet();
            } catch (StatusRuntimeException e) {
              numRefused.incrementAndGet();
              sleepMillis(2);
            }
          }
        });
      }
      while (numServed.get() == 0) sleepMillis(10); // the flood holds its streams
      double loaded = median(ttftMillis(node, 9));
      System.out.printf("noisy neighbour: quiet TTFT p50 %.1f ms alone, %.1f ms under the flood (%d flood calls served, %d refused)%n", solo, loaded, numServed.get(), numRefused.get());
      assertTrue(numRefused.get() > 0, "the flood hit its limits");
      assertTrue(loaded <= 2 * solo + 30, "quiet's TTFT p50 " + loaded + " ms under the flood vs " + solo + " ms alone");
    } finally {
      flooding.set(false);
      flood.shutdown();
      flood.awaitTermination(30, TimeUnit.SECONDS);
      node.runtime().beforeStep(() -> {});
      node.stop();
    }
  }

  private static double[] ttftMillis(NodeExtension node, int n) {
    double[] ttft = new double[n];
    for (int i = 0; i < n; i++) {
      ttft[i] = last(AuthInterceptorTest.stub(node, bearer("quiet")).generate(ask(2))).getUsage().getTimeToFirstTokenSeconds() * 1000;
    }
    return ttft;
  }

  private static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    return sorted[sorted.length / 2];
  }

  private static void sleepMillis(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
