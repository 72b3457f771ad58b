package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SamplingParams;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;

/** The engine driving the real ONNX Runtime on the {@code test} bundle. */
class EngineOnnxTest {

  private final Bundle bundle = TestBundles.get(BundlePreset.TEST);
  private final ModelSpec spec = bundle.spec();
  private final List<AutoCloseable> opened = new ArrayList<>();
  private KvCacheManager kv;
  private Engine engine;

  private Engine start(int numBlocks, EngineConfig config) {
    KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(spec, 16, numBlocks));
    OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage);
    kv = new KvCacheManager(storage);
    engine = new Engine(runtime, kv, config).start();
    opened.add(0, storage);
    opened.add(0, runtime);
    opened.add(0, engine);
    return engine;
  }

  @AfterEach
  void close() throws Exception {
    for (AutoCloseable c : opened) c.close();
    opened.clear();
  }

  @Test
  void concurrentGreedyRequests_produceExactlyTheirSoloTokens() throws Exception {
    int n = 32;
    SamplingParams greedy = SamplingParams.builder().maxTokens(12).temperature(0).ignoreEos(true).build();
    start(512, EngineConfig.defaults());
    List<int[]> solo = new ArrayList<>();
    for (int i = 0; i < n; i++) solo.add(run(request("solo" + i, prompt(i), image(i), greedy, new CollectingSink())).tokenArray());
    close();

    start(512, EngineConfig.defaults().withMaxNumBatchedTokens(256));
    List<CollectingSink> sinks = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      CollectingSink sink = new CollectingSink();
      assertInstanceOf(Engine.Admission.Accepted.class, engine.submit(request("together" + i, prompt(i), image(i), greedy, sink)));
      sinks.add(sink);
    }
    for (int i = 0; i < n; i++) assertArrayEquals(solo.get(i), sinks.get(i).await().tokenArray(), "request " + i);
    assertTrue(engine.stats().numSteps() < n * 12, "they were batched: " + engine.stats().numSteps() + " steps");
  }

  @Test
  void preemptedRequests_produceTheirUninterruptedTokens() throws Exception {
    SamplingParams greedy = SamplingParams.builder().maxTokens(40).temperature(0).ignoreEos(true).build();
    start(512, EngineConfig.defaults());
    List<int[]> uninterrupted = new ArrayList<>();
    for (int i = 0; i < 6; i++) uninterrupted.add(run(request("u" + i, prompt(i), null, greedy, new CollectingSink())).tokenArray());
    close();

    start(14, EngineConfig.defaults().withAdmissionWatermark(0)); // 224 slots for six sequences of up to ~100
    List<CollectingSink> sinks = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      CollectingSink sink = new CollectingSink();
      engine.submit(request("p" + i, prompt(i), null, greedy, sink));
      sinks.add(sink);
    }
    for (int i = 0; i < 6; i++) assertArrayEquals(uninterrupted.get(i), sinks.get(i).await().tokenArray(), "request " + i);
    assertTrue(engine.stats().numPreemptions() > 0, "the small pool forced preemptions");
  }

  @Test
  void stopStringSplitAcrossTokens_stopsThereAndIsNotEmitted() throws Exception {
    start(256, EngineConfig.defaults());
    SamplingParams free = SamplingParams.builder().maxTokens(40).temperature(0).ignoreEos(true).build();
    CollectingSink reference = run(request("free", prompt(3), null, free, new CollectingSink()));
    String text = reference.textNow();
    int[] tokens = reference.tokenArray();
    // A stop string from the middle of token 5 to the middle of token 7 (token boundaries from tokenBytes).
    int[] ends = new int[tokens.length + 1];
    for (int i = 0; i < tokens.length; i++) ends[i + 1] = ends[i] + new String(tokenBytesOf(tokens[i])).length();
    int from = -1;
    int to = -1;
    for (int i = 4; i + 2 < tokens.length && from < 0; i++) {
      if (ends[i + 1] - ends[i] >= 2 && ends[i + 3] - ends[i + 2] >= 2) {
        from = ends[i] + 1;
        to = ends[i + 2] + 1;
      }
    }
    assertTrue(from > 0, "found tokens long enough to split a stop string across");
    String stop = text.substring(from, to);
    int expectedEnd = text.indexOf(stop);
    SamplingParams stopping = SamplingParams.builder().maxTokens(40).temperature(0).ignoreEos(true).stop(List.of(stop)).build();
    CollectingSink stopped = run(request("stop", prompt(3), null, stopping, new CollectingSink()));
    assertEquals(FinishReason.STOP, stopped.reason);
    assertEquals(text.substring(0, expectedEnd), stopped.textNow());
    assertFalse(stopped.textNow().contains(stop));
  }

  @Test
  void seededSampling_isReproducibleWhateverElseIsInTheBatch() throws Exception {
    start(512, EngineConfig.defaults());
    SamplingParams seeded = SamplingParams.builder().maxTokens(16).temperature(1f).topP(0.95f).seed(42).ignoreEos(true).build();
    int[] alone = run(request("alone", prompt(1), null, seeded, new CollectingSink())).tokenArray();
    List<CollectingSink> others = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      CollectingSink sink = new CollectingSink();
      engine.submit(request("other" + i, prompt(10 + i), image(i), SamplingParams.builder().maxTokens(16).temperature(1f).build(), sink));
      others.add(sink);
    }
    int[] crowded = run(request("crowded", prompt(1), null, seeded, new CollectingSink())).tokenArray();
    assertArrayEquals(alone, crowded);
    SamplingParams otherSeed = SamplingParams.builder().maxTokens(16).temperature(1f).topP(0.95f).seed(43).ignoreEos(true).build();
    assertFalse(java.util.Arrays.equals(alone, run(request("seed43", prompt(1), null, otherSeed, new CollectingSink())).tokenArray()));
    for (CollectingSink sink : others) sink.await();
  }

  @Test
  void cancelledRequest_leavesNoBlockBehind() throws Exception {
    start(256, EngineConfig.defaults());
    CollectingSink sink = new CollectingSink();
    engine.submit(request("cancel", prompt(2), image(2), SamplingParams.builder().maxTokens(500).temperature(0).ignoreEos(true).build(), sink));
    EngineTest.waitUntil(() -> sink.tokenArray().length > 3);
    engine.abort("cancel");
    assertEquals(FinishReason.ABORTED, sink.await().reason);
    EngineTest.waitUntil(() -> kv.stats().numInUseBlocks() == 0);
    assertEquals(0, engine.stats().numRunning());
  }

  @Test
  void repeatedImagePrompt_reusesTheCachedPrefixIncludingTheImage() throws Exception {
    start(256, EngineConfig.defaults());
    SamplingParams greedy = SamplingParams.builder().maxTokens(4).temperature(0).ignoreEos(true).build();
    CollectingSink first = run(request("first", prompt(5), image(5), greedy, new CollectingSink()));
    CollectingSink second = run(request("second", prompt(5), image(5), greedy, new CollectingSink()));
    assertEquals(0, first.usage.cachedPromptTokens());
    int fullBlocks = (prompt(5).length - 1) / 16 * 16;
    assertEquals(fullBlocks, second.usage.cachedPromptTokens(), "every full block, image span included, came from the cache");
    assertArrayEquals(first.tokenArray(), second.tokenArray());
    // Same placeholder ids, another image: nothing from the image span on may be reused.
    CollectingSink otherImage = run(request("other", prompt(5), image(6), greedy, new CollectingSink()));
    assertTrue(otherImage.usage.cachedPromptTokens() <= 16, "only the block before the image span: " + otherImage.usage.cachedPromptTokens());
  }

  // ---- helpers -------------------------------------------------------------------------------------

  private CollectingSink run(EngineRequest request) throws InterruptedException {
    assertInstanceOf(Engine.Admission.Accepted.class, engine.submit(request));
    return ((CollectingSink) request.sink()).await();
  }

  private EngineRequest request(String id, int[] prompt, ImageEmbeddings image, SamplingParams params, CollectingSink sink) {
    return new EngineRequest(id, prompt, image, image == null ? 0 : IMAGE_START, params, 0, Long.MAX_VALUE, null, sink);
  }

  private static final int IMAGE_START = 20;

  private int[] prompt(int i) {
    return OnnxTestRequests.prompt(spec, i, IMAGE_START, 5 + 7 * i);
  }

  private ImageEmbeddings image(int i) {
    return OnnxTestRequests.image(spec, i);
  }

  private byte[] tokenBytesOf(int id) {
    return ((OnnxModelRuntime) opened.stream().filter(o -> o instanceof OnnxModelRuntime).findFirst().orElseThrow()).tokenizer().tokenBytes(id);
  }
}
