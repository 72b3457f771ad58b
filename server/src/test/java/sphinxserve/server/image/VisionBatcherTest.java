package sphinxserve.server.image;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.api.VisionSpec;
import sphinxserve.server.testing.CountingRuntime;

/**
 * Closing the vision encoder's thread while a call into the real ONNX Runtime (TEST bundle) runs: close waits for it,
 * and reports an encoder call that outlives its wait, so the node leaves the runtime open under it.
 */
final class VisionBatcherTest {

  private static CountingRuntime runtime;

  @BeforeAll
  static void open() {
    runtime = CountingRuntime.overTestBundle();
  }

  @AfterAll
  static void close() {
    runtime.beforeEncode(numViews -> {});
    runtime.close();
  }

  @Test
  void close_waitsForTheEncoderCallInFlight() throws Exception {
    CountDownLatch inEncode = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    AtomicBoolean returned = new AtomicBoolean();
    runtime.beforeEncode(numViews -> {
      inEncode.countDown();
      await(release);
    });
    VisionBatcher batcher = new VisionBatcher(runtime, 4);
    CompletableFuture<EncodedImage> encoded = submit(batcher).whenComplete((r, e) -> returned.set(true));
    assertTrue(inEncode.await(30, TimeUnit.SECONDS));
    Thread.ofPlatform().start(() -> {
      sleep(300);
      release.countDown();
    });
    assertTrue(batcher.close(Duration.ofSeconds(30)), "close gave up on a call that returned");
    assertTrue(returned.get() && encoded.isDone(), "close returned while the encoder call still ran");
    assertTrue(batcher.isStopped());
  }

  @Test
  void close_whenTheEncoderCallOutlivesTheWait_reportsNotStopped() throws Exception {
    CountDownLatch inEncode = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    runtime.beforeEncode(numViews -> {
      inEncode.countDown();
      await(release);
    });
    VisionBatcher batcher = new VisionBatcher(runtime, 4);
    CompletableFuture<EncodedImage> encoded = submit(batcher);
    assertTrue(inEncode.await(30, TimeUnit.SECONDS));
    try {
      assertFalse(batcher.close(Duration.ofMillis(200)), "close claimed a stop while the encoder ran");
      assertFalse(batcher.isStopped());
    } finally {
      release.countDown();
    }
    encoded.get(30, TimeUnit.SECONDS); // the call completes on the runtime that was left open
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!batcher.isStopped() && System.nanoTime() < end) Thread.sleep(5);
    assertTrue(batcher.isStopped());
  }

  private static CompletableFuture<EncodedImage> submit(VisionBatcher batcher) {
    VisionSpec vision = runtime.spec().vision();
    float[] pixels = new float[vision.numViews() * 3 * vision.viewSize() * vision.viewSize()];
    return batcher.submit("digest", 32, 32, pixels);
  }

  private static void await(CountDownLatch latch) {
    try {
      latch.await(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
