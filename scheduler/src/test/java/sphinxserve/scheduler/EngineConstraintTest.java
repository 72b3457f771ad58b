package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.TokenConstraint;
import sphinxserve.kvcache.KvCacheLayout;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.structured.Grammar;
import sphinxserve.structured.Grammars;
import sphinxserve.structured.TokenVocabulary;

/** Constrained decoding through the engine over the scripted runtime (token id t reads as "t "). */
class EngineConstraintTest {

  private final List<AutoCloseable> opened = new ArrayList<>();
  private ScriptedRuntime runtime;
  private KvCacheManager kv;
  private Engine engine;

  private void engine(int numBlocks) {
    runtime = new ScriptedRuntime(4096);
    KvCacheStorage storage = new KvCacheStorage(new KvCacheLayout(1, 1, 8, ScriptedRuntime.BLOCK_SIZE, numBlocks));
    kv = new KvCacheManager(storage);
    engine = new Engine(runtime, kv, EngineConfig.defaults().withAdmissionWatermark(0)).start();
    opened.add(storage);
    opened.add(0, engine);
  }

  @AfterEach
  void closeAll() throws Exception {
    for (AutoCloseable c : opened) c.close();
    opened.clear();
  }

  private TokenConstraint compile(Grammar grammar) {
    return Grammars.compile(grammar, TokenVocabulary.of(runtime.tokenizer(), List.of(ScriptedRuntime.EOS)));
  }

  private CollectingSink submit(String id, int[] prompt, SamplingParams params) {
    CollectingSink sink = new CollectingSink();
    Engine.Admission admission = engine.submit(new EngineRequest(id, prompt, null, 0, params, 0, Long.MAX_VALUE, null, sink));
    assertInstanceOf(Engine.Admission.Accepted.class, admission, () -> "admission of " + id + ": " + admission);
    return sink;
  }

  @Test
  void greedy_outputAlreadyInTheLanguage_isIdentical_withRawLogprobs() throws Exception {
    engine(1024);
    SamplingParams free = SamplingParams.builder().maxTokens(12).temperature(0).logprobs(3).build();
    CollectingSink unconstrained = submit("free", EngineTest.prompt(9, 3), free).await();
    String text = unconstrained.textNow();
    assertEquals(12, unconstrained.tokenArray().length);
    // The language holds the free answer and little else: the mask removes nearly every token at every step.
    TokenConstraint constraint = compile(Grammar.choice(List.of(text, "5 6 7 ", text + "9 ")));
    CollectingSink constrained = submit("constrained", EngineTest.prompt(9, 3), free.toBuilder().constraint(constraint).build()).await();
    assertArrayEquals(unconstrained.tokenArray(), constrained.tokenArray());
    assertEquals(text, constrained.textNow());
    assertEquals(unconstrained.logprobs.size(), constrained.logprobs.size());
    for (int i = 0; i < constrained.logprobs.size(); i++) { // the raw distribution's, not the masked one's
      var expected = unconstrained.logprobs.get(i);
      var actual = constrained.logprobs.get(i);
      assertEquals(expected.logprob(), actual.logprob(), "token " + i);
      assertArrayEquals(expected.topTokenIds(), actual.topTokenIds(), "token " + i);
      assertArrayEquals(expected.topLogprobs(), actual.topLogprobs(), "token " + i);
    }
    assertEquals(FinishReason.LENGTH, constrained.reason);
  }

  @Test
  void sampled_outputAlwaysInTheLanguage_andEndsWithEos() throws Exception {
    engine(1024);
    TokenConstraint constraint = compile(Grammar.regex("(1[0-9] ){3}(2[0-9] )?"));
    Pattern language = Pattern.compile("(1[0-9] ){3}(2[0-9] )?");
    for (int seed = 0; seed < 12; seed++) {
      SamplingParams params = SamplingParams.builder().maxTokens(20).temperature(1.5f).seed(seed).constraint(constraint).build();
      CollectingSink sink = submit("s" + seed, EngineTest.prompt(7, seed), params).await();
      assertTrue(language.matcher(sink.textNow()).matches(), sink.textNow());
      assertEquals(FinishReason.STOP, sink.reason, "ends with EOS, allowed only once complete");
      int[] tokens = sink.tokenArray();
      assertEquals(ScriptedRuntime.EOS, tokens[tokens.length - 1]);
    }
  }

  @Test
  void minTokens_conflictingWithTheMask_theMaskWins() throws Exception {
    engine(1024);
    TokenConstraint constraint = compile(Grammar.regex("(1[0-9] ){2}"));
    SamplingParams params = SamplingParams.builder().maxTokens(10).minTokens(6).temperature(0).constraint(constraint).build();
    CollectingSink sink = submit("m", EngineTest.prompt(5, 1), params).await();
    assertEquals(FinishReason.STOP, sink.reason, String.valueOf(sink.message));
    assertEquals(3, sink.tokenArray().length, "two tokens, then EOS though min_tokens asked for six");
    assertTrue(sink.textNow().matches("(1[0-9] ){2}"), sink.textNow());
  }

  @Test
  void preemption_andBatching_constrainedOutputsEqualARunAlone() throws Exception {
    Grammar grammar = Grammar.regex("([1-4][0-9] )+(5[0-9] )");
    engine(1024);
    TokenConstraint constraint = compile(grammar);
    List<int[]> alone = new ArrayList<>();
    for (int i = 0; i < 6; i++) alone.add(submit("a" + i, EngineTest.prompt(10 + 3 * i, 40 + i), params(constraint, i)).await().tokenArray());
    closeAll();
    engine(24); // 96 slots for six sequences of up to 60 tokens: preemptions
    constraint = compile(grammar);
    List<CollectingSink> together = new ArrayList<>();
    for (int i = 0; i < 6; i++) together.add(submit("b" + i, EngineTest.prompt(10 + 3 * i, 40 + i), params(constraint, i)));
    for (int i = 0; i < 6; i++) assertArrayEquals(alone.get(i), together.get(i).await().tokenArray(), "request " + i);
    assertTrue(engine.stats().numPreemptions() > 0, "the small pool forced preemptions");
    assertNotEquals(alone.get(0).length, 0);
  }

  private static SamplingParams params(TokenConstraint constraint, int seed) {
    return SamplingParams.builder().maxTokens(40).temperature(0.8f).seed(seed).constraint(constraint).build();
  }
}
