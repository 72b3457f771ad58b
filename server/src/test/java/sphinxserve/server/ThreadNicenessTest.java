package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Lowered threads run at the nice value asked, as the kernel reports it; other threads keep theirs. */
class ThreadNicenessTest {

  @Test
  void loweredFactory_threadsRunAtTheNiceValueAsked() throws Exception {
    Optional<Integer> mine = ThreadNiceness.currentNice();
    assumeTrue(mine.isPresent(), "nice values are read from /proc (Linux)");
    ExecutorService pool = Executors.newSingleThreadExecutor(ThreadNiceness.lowered(Thread.ofPlatform().factory(), 10));
    try {
      Optional<Integer> theirs = CompletableFuture.supplyAsync(ThreadNiceness::currentNice, pool).get(10, TimeUnit.SECONDS);
      assertEquals(Optional.of(Math.max(10, mine.get())), theirs, "the pool's thread, lowered before its first task");
      assertEquals(mine, ThreadNiceness.currentNice(), "only that thread: the caller keeps its priority");
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void virtualThreadsAndOutOfRangeValues_areRefused() throws Exception {
    assertThrows(IllegalArgumentException.class, () -> ThreadNiceness.lowerCurrentThread(0));
    assertThrows(IllegalArgumentException.class, () -> ThreadNiceness.lowerCurrentThread(20));
    Thread virtual = Thread.ofVirtual().unstarted(() -> assertThrows(IllegalStateException.class, () -> ThreadNiceness.lowerCurrentThread(5)));
    CompletableFuture<Throwable> failure = new CompletableFuture<>();
    virtual.setUncaughtExceptionHandler((t, e) -> failure.complete(e));
    virtual.start();
    virtual.join();
    assertTrue(failure.getNow(null) == null, "a virtual thread's lowering is refused, not applied to its carrier");
  }
}
