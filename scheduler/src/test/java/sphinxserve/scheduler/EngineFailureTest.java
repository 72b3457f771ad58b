package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.SamplingParams;
import sphinxserve.kvcache.KvCacheLayout;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;

/**
 * Faults injected into the engine loop over the scripted runtime: a failure ends only the requests it concerns,
 * with ERROR and their blocks freed, and the engine serves on; when it cannot go on it says so, refuses new work
 * and ends everything live. After every test no block is held.
 */
class EngineFailureTest {

  private final List<Throwable> failures = new CopyOnWriteArrayList<>();
  private ScriptedRuntime runtime;
  private KvCacheStorage storage;
  private KvCacheManager kv;
  private Engine engine;

  private void start() {
    start(r -> {});
  }

  /** Starts an engine over a scripted runtime that {@code setup} configured first. */
  private void start(java.util.function.Consumer<ScriptedRuntime> setup) {
    runtime = new ScriptedRuntime(4096);
    setup.accept(runtime);
    storage = new KvCacheStorage(new KvCacheLayout(1, 1, 8, ScriptedRuntime.BLOCK_SIZE, 256));
    kv = new KvCacheManager(storage);
    engine = new Engine(runtime, kv, EngineConfig.defaults(), failures::add).start();
  }

  @AfterEach
  void close() throws Exception {
    engine.close();
    assertEquals(0, kv.stats().numInUseBlocks(), "blocks held after the test");
    storage.close();
  }

  @Test
  void modelStepThrowsOnce_endsThatStepsRequestsOnly_andTheEngineServesOn() throws Exception {
    start();
    java.util.concurrent.atomic.AtomicBoolean thrown = new java.util.concurrent.atomic.AtomicBoolean();
    java.util.concurrent.CountDownLatch bothSubmitted = new java.util.concurrent.CountDownLatch(1);
    runtime.beforeStep(batch -> { // held until both are in (the script decodes 50 tokens in microseconds)
      try {
        bothSubmitted.await(30, java.util.concurrent.TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      if (batch.size() == 2 && !thrown.getAndSet(true)) throw new IllegalStateException("injected into a step");
    });
    CollectingSink a = submit("a", 5, 50, greedy());
    CollectingSink b = submit("b", 9, 50, greedy());
    bothSubmitted.countDown();
    assertEquals(FinishReason.ERROR, a.await().reason);
    assertEquals(FinishReason.ERROR, b.await().reason);
    assertTrue(a.message.contains("injected into a step"), a.message);
    EngineTest.waitUntil(() -> kv.stats().numInUseBlocks() == 0);
    CollectingSink after = submit("after", 5, 10, greedy());
    assertEquals(FinishReason.LENGTH, after.await().reason);
    assertEquals(10, after.tokenArray().length);
    assertTrue(engine.failure().isEmpty());
    assertTrue(failures.isEmpty());
  }

  @Test
  void close_waitsForTheModelStepInFlight_beforeReportingStopped() throws Exception {
    java.util.concurrent.CountDownLatch inStep = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.atomic.AtomicBoolean stepReturned = new java.util.concurrent.atomic.AtomicBoolean();
    start(r -> r.beforeStep(batch -> {
      inStep.countDown();
      try {
        release.await(30, java.util.concurrent.TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      stepReturned.set(true);
    }));
    CollectingSink sink = submit("long", 5, 50, greedy());
    assertTrue(inStep.await(30, java.util.concurrent.TimeUnit.SECONDS));
    Thread.ofPlatform().start(() -> {
      try {
        Thread.sleep(300);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      release.countDown();
    });
    assertTrue(engine.close(java.time.Duration.ofSeconds(30)), "close gave up on a step that returned");
    assertTrue(stepReturned.get(), "close returned while the model step still ran");
    assertTrue(engine.isStopped());
    assertEquals(FinishReason.ABORTED, sink.await().reason);
  }

  @Test
  void close_whenTheModelStepOutlivesTheWait_reportsNotStopped_untilItReturns() throws Exception {
    java.util.concurrent.CountDownLatch inStep = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    start(r -> r.beforeStep(batch -> {
      inStep.countDown();
      try {
        release.await(30, java.util.concurrent.TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }));
    CollectingSink sink = submit("hung", 5, 50, greedy());
    assertTrue(inStep.await(30, java.util.concurrent.TimeUnit.SECONDS));
    // The owner must not free the runtime or the KV pools now: the step still writes into them.
    assertFalse(engine.close(java.time.Duration.ofMillis(200)), "close claimed a stop while the model step ran");
    assertFalse(engine.isStopped());
    release.countDown();
    assertEquals(FinishReason.ABORTED, sink.await().reason);
    EngineTest.waitUntil(engine::isStopped);
  }

  @Test
  void nanRow_failsThatRequestOnly() throws Exception {
    start();
    // Request "bad" is the only one at positions >= 40.
    runtime.onRow((step, row) -> {
      if (step.endPosition() - 1 >= 40) row[7] = Float.NaN;
    });
    CollectingSink good = submit("good", 5, 20, greedy());
    CollectingSink bad = submit("bad", 40, 20, greedy());
    assertEquals(FinishReason.ERROR, bad.await().reason);
    assertTrue(bad.message.contains("NaN"), bad.message);
    assertEquals(FinishReason.LENGTH, good.await().reason);
    assertEquals(20, good.tokenArray().length);
  }

  @Test
  void detokenizingThrows_failsThatRequestOnly() throws Exception {
    start();
    runtime.poisonToken(4); // never the script's own choice (it answers ids >= 5)
    runtime.onRow((step, row) -> {
      if (step.endPosition() - 1 >= 40) row[4] = 100f; // "bad" samples the poisoned token
    });
    CollectingSink good = submit("good", 5, 20, greedy());
    CollectingSink bad = submit("bad", 40, 20, greedy());
    assertEquals(FinishReason.ERROR, bad.await().reason);
    assertTrue(bad.message.contains("poisoned token 4"), bad.message);
    assertEquals(FinishReason.LENGTH, good.await().reason);
  }

  @Test
  void idsPastTheTokenizersVocabulary_areNeverSampled() throws Exception {
    start(r -> {
      r.tokenizerVocab(50);
      r.onRow((step, row) -> {
        for (int id = 50; id < ScriptedRuntime.VOCAB; id++) row[id] = 100f; // the padding ids look best
      });
    });
    CollectingSink greedy = submit("greedy", 5, 30, greedy());
    CollectingSink sampled = submit("sampled", 7, 30, greedy().temperature(1f).seed(3));
    for (CollectingSink sink : List.of(greedy, sampled)) {
      assertEquals(FinishReason.LENGTH, sink.await().reason, sink.message);
      for (int id : sink.tokenArray()) assertTrue(id < 50, "sampled " + id);
    }
  }

  @Test
  void everyStepFails_theEngineGivesUp_endsEverything_andRefusesNewWork() throws Exception {
    start();
    runtime.beforeStep(batch -> {
      throw new IllegalStateException("the runtime is broken");
    });
    List<CollectingSink> sinks = new ArrayList<>();
    for (int i = 0; i < Engine.MAX_CONSECUTIVE_FAILED_STEPS + 2; i++) {
      Engine.Admission admission = engine.submit(request("r" + i, 5 + i, 10, greedy(), sinkInto(sinks)));
      if (admission instanceof Engine.Admission.Rejected rejected) {
        assertEquals(Engine.Admission.Reason.FAILED, rejected.reason());
        sinks.removeLast();
      }
      EngineTest.waitUntil(() -> sinks.getLast().isDone() || engine.failure().isPresent());
    }
    EngineTest.waitUntil(() -> !failures.isEmpty());
    assertEquals(1, failures.size(), "the listener runs once");
    assertTrue(failures.getFirst().getMessage().contains(Engine.MAX_CONSECUTIVE_FAILED_STEPS + " model steps failed in a row"),
        failures.getFirst().getMessage());
    for (CollectingSink sink : sinks) assertEquals(FinishReason.ERROR, sink.await().reason);
    Engine.Admission later = engine.submit(request("later", 5, 10, greedy(), new CollectingSink()));
    Engine.Admission.Rejected rejected = assertInstanceOf(Engine.Admission.Rejected.class, later);
    assertEquals(Engine.Admission.Reason.FAILED, rejected.reason());
    assertTrue(rejected.message().contains("the runtime is broken"), rejected.message());
  }

  @Test
  void anErrorInTheLoop_endsLiveRequests_andReportsTheFailure() throws Exception {
    start();
    runtime.beforeStep(batch -> {
      if (batch.stream().anyMatch(s -> s.endPosition() - 1 >= 12)) throw new StackOverflowError("injected");
    });
    CollectingSink running = submit("running", 5, 1000, greedy());
    EngineTest.waitUntil(() -> running.tokenArray().length > 0 || running.isDone());
    assertEquals(FinishReason.ERROR, running.await().reason);
    assertTrue(running.message.contains("the engine failed"), running.message);
    EngineTest.waitUntil(() -> !failures.isEmpty());
    assertInstanceOf(StackOverflowError.class, failures.getFirst());
    assertInstanceOf(StackOverflowError.class, engine.failure().orElseThrow());
    assertInstanceOf(Engine.Admission.Rejected.class, engine.submit(request("late", 5, 4, greedy(), new CollectingSink())));
  }

  @Test
  void stopStrings_areNotMatchedWithinMinTokens() throws Exception {
    start();
    int[] prompt = EngineTest.prompt(5, 0);
    CollectingSink probe = submit(prompt, 6, greedy());
    probe.await();
    String first = probe.tokens.get(0) + " ";
    String second = probe.tokens.get(1) + " ";
    String third = probe.tokens.get(2) + " ";
    // Without min_tokens the first token's text is a stop: nothing is sent.
    CollectingSink stopped = submit(prompt, 6, greedy().stop(List.of(first)));
    assertEquals(FinishReason.STOP, stopped.await().reason);
    assertEquals("", stopped.textNow());
    // With min_tokens 2 the first two tokens' text is never searched; the third token's is.
    CollectingSink held = submit(prompt, 6, greedy().stop(List.of(first, third)).minTokens(2));
    assertEquals(FinishReason.STOP, held.await().reason);
    assertEquals(first + second, held.textNow());
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private int ids;

  private CollectingSink submit(String id, int promptLength, int maxTokens, SamplingParams.Builder params) {
    CollectingSink sink = new CollectingSink();
    Engine.Admission admission = engine.submit(request(id, promptLength, maxTokens, params, sink));
    assertInstanceOf(Engine.Admission.Accepted.class, admission, () -> "admission of " + id + ": " + admission);
    return sink;
  }

  private CollectingSink submit(int[] prompt, int maxTokens, SamplingParams.Builder params) {
    CollectingSink sink = new CollectingSink();
    EngineRequest request = new EngineRequest("p" + ids++, prompt, null, 0, params.maxTokens(maxTokens).build(),
        0, Long.MAX_VALUE, null, sink);
    assertInstanceOf(Engine.Admission.Accepted.class, engine.submit(request));
    return sink;
  }

  private static CollectingSink sinkInto(List<CollectingSink> sinks) {
    CollectingSink sink = new CollectingSink();
    sinks.add(sink);
    return sink;
  }

  private static EngineRequest request(String id, int promptLength, int maxTokens, SamplingParams.Builder params, CollectingSink sink) {
    SamplingParams p = params.maxTokens(maxTokens).build();
    return new EngineRequest(id, EngineTest.prompt(promptLength, promptLength), null, 0, p, 0, Long.MAX_VALUE, null, sink);
  }

  private static SamplingParams.Builder greedy() {
    return SamplingParams.builder().temperature(0);
  }
}
