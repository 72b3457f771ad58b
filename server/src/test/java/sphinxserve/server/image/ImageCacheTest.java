package sphinxserve.server.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.server.testing.CountingRuntime;
import sphinxserve.server.testing.TestImages;

/** The image cache's time limit, over the real ONNX Runtime with the TEST bundle. */
final class ImageCacheTest {

  private static CountingRuntime runtime;

  @BeforeAll
  static void open() {
    runtime = CountingRuntime.overTestBundle();
  }

  @AfterAll
  static void close() {
    runtime.close();
  }

  private static ImageCache cache(Duration timeout, int maxImageJobs) {
    return new ImageCache(runtime, new ImageCacheConfig(1 << 26, new ImageLimits(1 << 20, 1 << 22, 4096), 1, maxImageJobs, 4, timeout));
  }

  @Test
  void put_encoderSlowerThanTheTimeout_failsTimedOutAndKeepsThePermitUntilTheWorkEnds() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    runtime.beforeEncode(numViews -> {
      try {
        release.await(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    try (ImageCache cache = cache(Duration.ofMillis(200), 1)) {
      byte[] image = TestImages.png(TestImages.noise(32, 32, 7));
      var e = assertThrows(ExecutionException.class, () -> cache.put(image).get(10, TimeUnit.SECONDS));
      ImageRejectedException rejected = assertInstanceOf(ImageRejectedException.class, e.getCause());
      assertEquals(ImageRejectedException.Kind.TIMED_OUT, rejected.kind());
      assertTrue(rejected.getMessage().startsWith("image: not decoded and encoded within 200 ms (image_timeout)"), rejected.getMessage());
      assertEquals(0, cache.numFreeImageJobs(), "the encoder still runs: its permit is held");
      assertTrue(cache.lookup(ImageDigest.of(image)).isEmpty(), "a timed-out image is not cached");

      runtime.beforeEncode(numViews -> {});
      release.countDown();
      long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (cache.numFreeImageJobs() == 0 && System.nanoTime() < end) Thread.sleep(5);
      assertEquals(1, cache.numFreeImageJobs(), "the permit returns when the work ends");
      ImageCache.Result retried = cache.put(image).get(10, TimeUnit.SECONDS);
      assertFalse(retried.cacheHit(), "the retry encodes again");
      assertEquals(32, retried.image().width());
    } finally {
      runtime.beforeEncode(numViews -> {});
      release.countDown();
    }
  }
}
