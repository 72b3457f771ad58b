package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.SequenceStep;
import sphinxserve.kvcache.KvCacheLayout;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;

/** The engine loop over the scripted runtime: budget, ordering, preemption, abort, deadline, admission. */
class EngineTest {

  private final List<AutoCloseable> opened = new ArrayList<>();
  private ScriptedRuntime runtime;
  private KvCacheManager kv;
  private Engine engine;

  private Engine engine(int numBlocks, EngineConfig config) {
    runtime = new ScriptedRuntime(4096);
    KvCacheStorage storage = new KvCacheStorage(new KvCacheLayout(1, 1, 8, ScriptedRuntime.BLOCK_SIZE, numBlocks));
    kv = new KvCacheManager(storage);
    engine = new Engine(runtime, kv, config).start();
    opened.add(storage);
    opened.add(0, engine);
    return engine;
  }

  @AfterEach
  void closeAll() throws Exception {
    for (AutoCloseable c : opened) c.close();
  }

  @Test
  void step_tokenBudgetAndSequenceLimitHoldEveryStep() throws Exception {
    engine(512, EngineConfig.defaults().withMaxNumBatchedTokens(16).withMaxNumSeqs(4));
    List<CollectingSink> sinks = new ArrayList<>();
    for (int i = 0; i < 10; i++) sinks.add(submit("r" + i, prompt(5 + 4 * i, i), 8, 0));
    for (CollectingSink sink : sinks) assertEquals(FinishReason.LENGTH, sink.await().reason);
    for (List<SequenceStep> batch : runtime.batches()) {
      assertTrue(batch.stream().mapToInt(SequenceStep::numTokens).sum() <= 16, "budget: " + batch.size());
      assertTrue(batch.size() <= 4, "sequences: " + batch.size());
    }
    assertAllBlocksReleased();
  }

  @Test
  void step_decodesAreScheduledInEveryStepOfALongPrefill() throws Exception {
    engine(1024, EngineConfig.defaults().withMaxNumBatchedTokens(16));
    runtime.beforeStep(batch -> sleepMillis(1)); // so the decoders outlive the long prefill
    List<CollectingSink> decoders = new ArrayList<>();
    for (int i = 0; i < 3; i++) decoders.add(submit("short" + i, prompt(6, i), 1000, 0));
    waitUntil(() -> decoders.stream().allMatch(s -> s.tokenArray().length > 2));
    int[] longPrompt = new int[300];
    java.util.Arrays.fill(longPrompt, 60); // marks the long prompt's chunks
    longPrompt[0] = 1;
    CollectingSink prefill = submit("long", longPrompt, 4, 0);
    prefill.await();
    int numLongChunks = 0;
    for (List<SequenceStep> batch : runtime.batches()) {
      boolean hasLongChunk = batch.stream().anyMatch(s -> s.numTokens() > 1 && s.tokenIds()[s.numTokens() - 1] == 60);
      if (!hasLongChunk) continue;
      numLongChunks++;
      assertEquals(3, batch.stream().filter(s -> s.numTokens() == 1).count(), "decodes in a step with a prefill chunk");
    }
    assertTrue(numLongChunks >= 300 / 16, "the long prompt was chunked: " + numLongChunks);
    assertTrue(decoders.stream().noneMatch(CollectingSink::isDone), "the decoders were running throughout");
    for (int i = 0; i < 3; i++) engine.abort("short" + i);
  }

  @Test
  void latencyTarget_cutsPrefillChunksBesideDecodesOnly() throws Exception {
    engine(2048, EngineConfig.defaults().withItlTarget(ItlTarget.millis(30)));
    // Steps cost 2 ms plus 0.2 ms per prefill token, as a CPU's compute-bound prefill does.
    runtime.beforeStep(batch -> sleepMillis(2 + batch.stream().filter(s -> s.numTokens() > 1).mapToInt(SequenceStep::numTokens).sum() / 5));
    submit("alone", markedPrompt(1200, 60), 1, 0).await();
    assertEquals(512, longestChunkEndingIn(runtime.batches(), 60), "nobody decodes: a chunk takes the whole budget");

    List<CollectingSink> decoders = new ArrayList<>();
    for (int i = 0; i < 3; i++) decoders.add(submit("short" + i, prompt(6, i), 100_000, 0));
    waitUntil(() -> decoders.stream().allMatch(s -> s.tokenArray().length > 20)); // decode-only steps measured
    int before = runtime.batches().size();
    submit("storm", markedPrompt(1200, 61), 1, 0).await();
    List<List<SequenceStep>> storm = runtime.batches().subList(before, runtime.batches().size());
    int longest = longestChunkEndingIn(storm, 61);
    // 30 ms target − ~2 ms of decodes at 0.2 ms a token: about 140 prefill tokens a step, not 509.
    assertTrue(longest >= 16 && longest <= 200, "prefill chunk beside decodes: " + longest);
    for (List<SequenceStep> batch : storm) {
      if (batch.stream().anyMatch(s -> s.numTokens() > 1)) {
        assertEquals(3, batch.stream().filter(s -> s.numTokens() == 1).count(), "the decodes ran in every step of the storm");
      }
    }
    for (int i = 0; i < 3; i++) engine.abort("short" + i);
    assertAllBlocksReleased();
  }

  @Test
  void relativeLatencyTarget_followsTheMeasuredDecodeStep() throws Exception {
    engine(2048, EngineConfig.defaults().withItlTarget(ItlTarget.relative(1.5)));
    // Decode steps cost 20 ms, prefill 0.2 ms a token: 1.5 × 20 ms leaves 10 ms, about 50 tokens, beside decodes.
    runtime.beforeStep(batch -> sleepMillis(20 + batch.stream().filter(s -> s.numTokens() > 1).mapToInt(SequenceStep::numTokens).sum() / 5));
    List<CollectingSink> decoders = new ArrayList<>();
    for (int i = 0; i < 2; i++) decoders.add(submit("short" + i, prompt(6, i), 100_000, 0));
    waitUntil(() -> decoders.stream().allMatch(s -> s.tokenArray().length > 8)); // decode-only steps measured
    int before = runtime.batches().size();
    submit("storm", markedPrompt(1200, 62), 1, 0).await();
    int longest = longestChunkEndingIn(runtime.batches().subList(before, runtime.batches().size()), 62);
    assertTrue(longest >= 16 && longest <= 110, "prefill chunk beside 20 ms decode steps under a 1.5x target: " + longest);
    for (int i = 0; i < 2; i++) engine.abort("short" + i);
    assertAllBlocksReleased();
  }

  /** BOS, then {@code length − 1} copies of {@code marker}, so the prompt's chunks can be told apart. */
  private static int[] markedPrompt(int length, int marker) {
    int[] prompt = new int[length];
    java.util.Arrays.fill(prompt, marker);
    prompt[0] = 1;
    return prompt;
  }

  private static int longestChunkEndingIn(List<List<SequenceStep>> batches, int marker) {
    int longest = 0;
    for (List<SequenceStep> batch : batches) {
      for (SequenceStep s : batch) {
        if (s.numTokens() > 1 && s.tokenIds()[s.numTokens() - 1] == marker) longest = Math.max(longest, s.numTokens());
      }
    }
    return longest;
  }

  @Test
  void preemption_outputsEqualAnUninterruptedRun() throws Exception {
    List<int[]> uninterrupted = runSix(1024);
    assertEquals(0, engine.stats().numPreemptions());
    closeAll();
    opened.clear();
    List<int[]> squeezed = runSix(24); // 96 slots for six sequences of up to 60 tokens
    assertTrue(engine.stats().numPreemptions() > 0, "the small pool forced preemptions");
    for (int i = 0; i < 6; i++) assertArrayEquals(uninterrupted.get(i), squeezed.get(i), "request " + i);
    assertAllBlocksReleased();
  }

  @Test
  void hooks_scheduledOnceBeforeAnyTokenAndPreemptedAsCounted() throws Exception {
    engine(24, EngineConfig.defaults().withAdmissionWatermark(0));
    List<CollectingSink> sinks = new ArrayList<>();
    for (int i = 0; i < 6; i++) sinks.add(submit("h" + i, prompt(10 + 3 * i, 40 + i), 40, 0));
    for (CollectingSink sink : sinks) sink.await();
    int numPreempted = 0;
    for (CollectingSink sink : sinks) {
      assertEquals(1, sink.numScheduled.get(), "onScheduled once, at the first admission only");
      assertEquals(0, sink.numTokensBeforeScheduled);
      assertEquals(sink.usage.numPreemptions(), sink.numPreempted.get());
      numPreempted += sink.numPreempted.get();
    }
    assertEquals(engine.stats().numPreemptions(), numPreempted);
    assertTrue(numPreempted > 0, "the small pool forced preemptions");
  }

  private List<int[]> runSix(int numBlocks) throws Exception {
    engine(numBlocks, EngineConfig.defaults().withAdmissionWatermark(0));
    List<CollectingSink> sinks = new ArrayList<>();
    for (int i = 0; i < 6; i++) sinks.add(submit("p" + i, prompt(10 + 3 * i, 40 + i), 40, 0));
    List<int[]> out = new ArrayList<>();
    for (CollectingSink sink : sinks) out.add(sink.await().tokenArray());
    return out;
  }

  @Test
  void abortAndDeadline_freeEveryBlockAndFinishWithTheirReason() throws Exception {
    engine(1024, EngineConfig.defaults());
    CollectingSink aborted = submit("a", prompt(30, 1), 3000, 0);
    waitUntil(() -> aborted.tokenArray().length > 5);
    engine.abort("a");
    assertEquals(FinishReason.ABORTED, aborted.await().reason);

    runtime.beforeStep(batch -> sleepMillis(1)); // 3,000 tokens take seconds: the deadline comes first
    SamplingParams params = SamplingParams.builder().maxTokens(3000).temperature(0).build();
    CollectingSink expired = new CollectingSink();
    engine.submit(new EngineRequest("d", prompt(30, 2), null, 0, params, 0, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(100), null, expired));
    assertEquals(FinishReason.DEADLINE, expired.await().reason);
    assertTrue(expired.tokenArray().length > 0, "it ran before expiring");
    assertAllBlocksReleased();
  }

  @Test
  void abort_ofAWaitingRequestFinishesItWithoutRunning() throws Exception {
    engine(1024, EngineConfig.defaults().withMaxNumSeqs(1));
    CollectingSink running = submit("running", prompt(5, 1), 3000, 0);
    waitUntil(() -> running.tokenArray().length > 0);
    CollectingSink waiting = submit("waiting", prompt(5, 2), 10, 0);
    engine.abort("waiting");
    assertEquals(FinishReason.ABORTED, waiting.await().reason);
    assertEquals(0, waiting.tokenArray().length);
    engine.abort("running");
    running.await();
    assertAllBlocksReleased();
  }

  @Test
  void admission_higherPriorityFirstThenArrivalOrder() throws Exception {
    engine(1024, EngineConfig.defaults().withMaxNumSeqs(1));
    CollectingSink blocker = submit("blocker", prompt(5, 1), 30, 0);
    waitUntil(() -> blocker.tokenArray().length > 0);
    List<CollectingSink> sinks = new ArrayList<>();
    String[] ids = {"low-early", "low-late", "high"};
    int[] priorities = {0, 0, 5};
    for (int i = 0; i < 3; i++) sinks.add(submit(ids[i], prompt(5, 10 + i), 3, priorities[i]));
    for (CollectingSink sink : sinks) sink.await();
    long lowEarly = sinks.get(0).firstOutputNanos;
    long lowLate = sinks.get(1).firstOutputNanos;
    long high = sinks.get(2).firstOutputNanos;
    assertTrue(high < lowEarly && lowEarly < lowLate, "high first, then the two lows in arrival order");
  }

  @Test
  void submit_refusesWhenTheWaitingQueueIsFull() throws Exception {
    engine(1024, EngineConfig.defaults().withMaxWaiting(2).withMaxNumSeqs(1));
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch inStep = new CountDownLatch(1);
    runtime.beforeStep(batch -> {
      inStep.countDown();
      try {
        release.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    CollectingSink first = submit("first", prompt(5, 1), 2, 0);
    inStep.await();
    CollectingSink second = submit("second", prompt(5, 2), 2, 0);
    CollectingSink third = submit("third", prompt(5, 3), 2, 0);
    Engine.Admission refused = engine.submit(request("fourth", prompt(5, 4), 2, 0, new CollectingSink()));
    assertEquals(Engine.Admission.Reason.QUEUE_FULL, assertInstanceOf(Engine.Admission.Rejected.class, refused).reason());
    runtime.beforeStep(batch -> {});
    release.countDown();
    for (CollectingSink sink : List.of(first, second, third)) assertEquals(FinishReason.LENGTH, sink.await().reason);
  }

  @Test
  void submit_refusesWhatCanNeverFit() {
    engine(16, EngineConfig.defaults()); // 64 slots
    var tooLongForPool = engine.submit(request("big", prompt(40, 1), 100, 0, new CollectingSink()));
    assertEquals(Engine.Admission.Reason.TOO_LARGE, assertInstanceOf(Engine.Admission.Rejected.class, tooLongForPool).reason());
    var tooLongForContext = engine.submit(request("huge", prompt(5000, 1), 1, 0, new CollectingSink()));
    assertTrue(((Engine.Admission.Rejected) tooLongForContext).message().contains("context"));
  }

  @Test
  void aging_lowPriorityRequestFinishesUnderASteadyStreamOfHighPriorityWork() throws Exception {
    double aging = 0.05; // one priority level per 50 ms waited: priority 0 catches up with 10 after ~0.5 s
    engine(1024, EngineConfig.defaults().withMaxNumSeqs(1).withPriorityAgingSeconds(aging));
    AtomicBoolean producing = new AtomicBoolean(true);
    AtomicInteger numHigh = new AtomicInteger();
    // The stream comes from the engine's own steps: every step a new one-token high-priority request arrives
    // and one is served, so high-priority work is always waiting, however the test's threads are scheduled.
    runtime.beforeStep(batch -> {
      if (producing.get()) submit("high" + numHigh.incrementAndGet(), prompt(5, 7), 1, 10);
      sleepMillis(1);
    });
    submit("seed", prompt(5, 8), 1, 10);
    CollectingSink low = submit("low", prompt(5, 9), 3, 0);
    low.await();
    int highsBeforeLowFinished = numHigh.get();
    producing.set(false);
    assertEquals(FinishReason.LENGTH, low.reason);
    assertTrue(low.usage.queueSeconds() >= 10 * aging * 0.9,
        "it waited until aging lifted it to the stream's priority: " + low.usage.queueSeconds() + " s");
    assertTrue(highsBeforeLowFinished > 20, "high-priority requests kept arriving meanwhile: " + highsBeforeLowFinished);
  }

  @Test
  void stopToken_releasesTextHeldBackAsAPossibleStopStringStart() throws Exception {
    engine(64, EngineConfig.defaults());
    // The script answers prompt(5, 3)'s last token with a fixed first token t; "t " is held back while it could
    // begin the stop string "t x", and EOS comes right after, as the request's stop id.
    int[] prompt = prompt(5, 3);
    int first = ScriptedRuntime.next(prompt[4], 4);
    int second = ScriptedRuntime.next(first, 5);
    SamplingParams params = SamplingParams.builder().maxTokens(10).temperature(0).stop(List.of(first + " x"))
        .stopTokenIds(List.of(second)).build();
    CollectingSink sink = new CollectingSink();
    engine.submit(new EngineRequest("held", prompt, null, 0, params, 0, Long.MAX_VALUE, null, sink));
    assertEquals(FinishReason.STOP, sink.await().reason);
    assertEquals(first + " ", sink.textNow(), "the held-back text was released at the stop token");
  }

  // ---- helpers -------------------------------------------------------------------------------------

  private CollectingSink submit(String id, int[] prompt, int maxTokens, int priority) {
    CollectingSink sink = new CollectingSink();
    Engine.Admission admission = engine.submit(request(id, prompt, maxTokens, priority, sink));
    assertInstanceOf(Engine.Admission.Accepted.class, admission, () -> "admission of " + id + ": " + admission);
    return sink;
  }

  private static EngineRequest request(String id, int[] prompt, int maxTokens, int priority, CollectingSink sink) {
    return new EngineRequest(id, prompt, null, 0, SamplingParams.builder().maxTokens(maxTokens).temperature(0).build(), priority, Long.MAX_VALUE, null, sink);
  }

  /** BOS then {@code length − 1} ordinary ids derived from {@code seed}. */
  static int[] prompt(int length, int seed) {
    int[] prompt = new int[length];
    prompt[0] = 1;
    for (int i = 1; i < length; i++) prompt[i] = 5 + Math.floorMod(seed * 131 + i * 17, ScriptedRuntime.VOCAB - 5);
    return prompt;
  }

  private static void sleepMillis(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void assertAllBlocksReleased() throws InterruptedException {
    waitUntil(() -> kv.stats().numInUseBlocks() == 0);
    var stats = kv.stats();
    assertEquals(stats.numBlocks(), stats.numFreeBlocks() + stats.numCachedBlocks(), "every block free or cached");
  }

  static void waitUntil(java.util.function.BooleanSupplier condition) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > end) throw new AssertionError("condition not reached in 30 s");
      Thread.sleep(2);
    }
  }
}
