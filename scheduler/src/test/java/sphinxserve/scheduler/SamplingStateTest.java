package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import sphinxserve.api.SamplingParams;

class SamplingStateTest {

  private static final int V = 8;
  private static final int EOS = 1;
  // id:                         0    1    2     3    4    5     6    7
  private static final float[] ROW = {2f, 0f, -1f, 3f, 4f, -2f, 0.5f, 1f};

  @Test
  void applyPenalties_repetition_dividesPositiveMultipliesNegativeOverPromptAndOutput() {
    SamplingState s = state(SamplingParams.builder().repetitionPenalty(2f), new int[] {2, 4, 4});
    s.append(3);
    s.append(3);
    s.append(5);
    float[] row = ROW.clone();
    s.applyPenalties(row);
    // prompt {2, 4}, output {3, 5}; 3 twice but penalised once.
    assertArrayEquals(new float[] {2f, 0f, -2f, 1.5f, 2f, -4f, 0.5f, 1f}, row);
  }

  @Test
  void applyPenalties_frequency_subtractsPerOccurrenceInOutputOnly() {
    SamplingState s = state(SamplingParams.builder().frequencyPenalty(0.5f), new int[] {0, 6});
    s.append(3);
    s.append(3);
    s.append(5);
    float[] row = ROW.clone();
    s.applyPenalties(row);
    assertArrayEquals(new float[] {2f, 0f, -1f, 2f, 4f, -2.5f, 0.5f, 1f}, row);
  }

  @Test
  void applyPenalties_presence_subtractsOnceInOutputOnly() {
    SamplingState s = state(SamplingParams.builder().presencePenalty(0.25f), new int[] {0});
    s.append(3);
    s.append(3);
    s.append(7);
    float[] row = ROW.clone();
    s.applyPenalties(row);
    assertArrayEquals(new float[] {2f, 0f, -1f, 2.75f, 4f, -2f, 0.5f, 0.75f}, row);
  }

  @Test
  void applyPenalties_allThree_inVllmOrder() {
    SamplingState s = state(
        SamplingParams.builder().repetitionPenalty(2f).frequencyPenalty(0.5f).presencePenalty(0.25f), new int[] {2});
    s.append(3);
    s.append(3);
    s.append(2);
    float[] row = ROW.clone();
    s.applyPenalties(row);
    // 2: -1 * 2 = -2, then -0.5 - 0.25 = -2.75; 3: 3 / 2 = 1.5, then -1.0 - 0.25 = 0.25.
    assertArrayEquals(new float[] {2f, 0f, -2.75f, 0.25f, 4f, -2f, 0.5f, 1f}, row);
  }

  @Test
  void applyPenalties_off_leavesRowUntouched() {
    SamplingState s = state(SamplingParams.builder(), new int[] {2, 3});
    s.append(4);
    float[] row = ROW.clone();
    s.applyPenalties(row);
    assertArrayEquals(ROW, row);
    assertEquals(1, s.numGenerated());
  }

  @Test
  void append_manyDistinctTokens_countsEach() {
    int vocab = 1000;
    SamplingState s = new SamplingState(SamplingParams.builder().frequencyPenalty(1f).build(), vocab, EOS, new int[0]);
    for (int round = 0; round < 3; round++) {
      for (int id = 0; id < 100; id++) s.append(id);
    }
    float[] row = new float[vocab];
    s.applyPenalties(row);
    for (int id = 0; id < vocab; id++) assertEquals(id < 100 ? -3f : 0f, row[id]);
    assertEquals(3, s.count(42));
    assertEquals(300, s.numGenerated());
  }

  @Test
  void applyMinTokens_beforeMinimum_masksEosAndStopIds() {
    SamplingState s = state(SamplingParams.builder().minTokens(1).stopTokenIds(List.of(6)), new int[0]);
    float[] row = ROW.clone();
    s.applyMinTokens(row);
    assertEquals(Float.NEGATIVE_INFINITY, row[EOS]);
    assertEquals(Float.NEGATIVE_INFINITY, row[6]);
    s.append(0);
    row = ROW.clone();
    s.applyMinTokens(row);
    assertArrayEquals(ROW, row);
  }

  @Test
  void isStopToken_ignoreEos_onlyStopIds() {
    assertTrue(state(SamplingParams.builder(), new int[0]).isStopToken(EOS));
    SamplingState s = state(SamplingParams.builder().ignoreEos(true).stopTokenIds(List.of(6)), new int[0]);
    assertFalse(s.isStopToken(EOS));
    assertTrue(s.isStopToken(6));
  }

  @Test
  void seed_absent_drawsRandomSeed() {
    SamplingState a = state(SamplingParams.builder(), new int[0]);
    SamplingState b = state(SamplingParams.builder(), new int[0]);
    assertNotEquals(a.seed(), b.seed());
    assertEquals(5L, state(SamplingParams.builder().seed(5), new int[0]).seed());
  }

  /** Ids 0 and 1 special (1 = EOS), 2 = "a", 3 = "b", 4 = "ab", 5 = "c", 6 = "ba", 7 = "x"; 10 logit rows (padded). */
  private static sphinxserve.api.TokenConstraint constraint(String regex, boolean withB) {
    List<byte[]> tokens = new java.util.ArrayList<>();
    for (String t : new String[] {"", "", "a", withB ? "b" : "", "ab", "c", withB ? "ba" : "", "x"}) {
      tokens.add(t.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
    return sphinxserve.structured.Grammars.compile(sphinxserve.structured.Grammar.regex(regex),
        sphinxserve.structured.TokenVocabulary.of(tokens, List.of(EOS)));
  }

  private static List<Integer> finite(float[] logits) {
    List<Integer> ids = new java.util.ArrayList<>();
    for (int id = 0; id < logits.length; id++) {
      if (logits[id] > Float.NEGATIVE_INFINITY) ids.add(id);
    }
    return ids;
  }

  @Test
  void applyConstraint_masksDisallowed_keepsAllowedLogits_padsDenied() {
    SamplingState s = new SamplingState(SamplingParams.builder().constraint(constraint("ab?c", true)).build(), 10, EOS, new int[0]);
    float[] logits = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    s.applyConstraint(logits, new long[1]);
    assertEquals(List.of(2, 4), finite(logits));
    assertEquals(3f, logits[2]);
    assertEquals(5f, logits[4]);
    s.append(4);
    logits = new float[10];
    s.applyConstraint(logits, new long[1]);
    assertEquals(List.of(5), finite(logits));
    s.append(5);
    assertTrue(s.matcher().isTerminated());
    logits = new float[10];
    s.applyConstraint(logits, new long[1]);
    assertEquals(List.of(EOS), finite(logits), "terminated: EOS is the only choice");
  }

  @Test
  void applyConstraint_overManyWords_deniedRunsFullWordsAndMixedWords_matchTheMask() {
    // 200 one-byte tokens: word 0 denied entirely (ids 2-63 are "!"), word 1 allowed entirely (64 distinct
    // allowed characters), word 2 mixed (even "a", odd "!"), word 3 partial (192-195 "b", 196-199 "!").
    String allowedChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
    List<byte[]> tokens = new java.util.ArrayList<>();
    List<Integer> expected = new java.util.ArrayList<>();
    for (int id = 0; id < 200; id++) {
      String t;
      if (id < 2) {
        t = "";
      } else if (id < 64) {
        t = "!";
      } else if (id < 128) {
        t = String.valueOf(allowedChars.charAt(id - 64));
      } else if (id < 192) {
        t = id % 2 == 0 ? "a" : "!";
      } else {
        t = id < 196 ? "b" : "!";
      }
      tokens.add(t.getBytes(java.nio.charset.StandardCharsets.UTF_8));
      if (!t.equals("!") && !t.isEmpty()) expected.add(id);
    }
    sphinxserve.api.TokenConstraint c = sphinxserve.structured.Grammars.compile(
        sphinxserve.structured.Grammar.regex("([0-9A-Za-z_]|-)+"), sphinxserve.structured.TokenVocabulary.of(tokens, List.of(EOS)));
    SamplingState s = new SamplingState(SamplingParams.builder().constraint(c).build(), 200, EOS, new int[0]);
    float[] logits = new float[200];
    for (int id = 0; id < 200; id++) logits[id] = id;
    s.applyConstraint(logits, new long[4]);
    assertEquals(expected, finite(logits));
    for (int id : expected) assertEquals(id, logits[id], "an allowed logit is kept as it was");
  }

  @Test
  void applyConstraint_minTokens_theMaskWins() {
    SamplingState s = new SamplingState(SamplingParams.builder().maxTokens(9).minTokens(5).constraint(constraint("a", true)).build(), 10, EOS, new int[0]);
    s.append(2);
    float[] logits = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    s.applyMinTokens(logits);
    assertEquals(Float.NEGATIVE_INFINITY, logits[EOS]);
    s.applyConstraint(logits, new long[1]);
    assertEquals(List.of(EOS), finite(logits), "never every token -Infinity");
  }

  @Test
  void applyConstraint_deadEnd_failsTheRequestInsteadOfEndingItAsIfComplete() {
    // "a" then "b" is the only sentence, but no token is "b" alone: after "a" nothing can follow.
    SamplingState s = new SamplingState(SamplingParams.builder().constraint(constraint("ab", false)).build(), 10, EOS, new int[0]);
    s.append(2);
    float[] logits = new float[10];
    IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> s.applyConstraint(logits, new long[1]));
    assertTrue(e.getMessage().contains("dead end"), e.getMessage());
  }

  @Test
  void append_tokenTheConstraintForbids_throws() {
    SamplingState s = new SamplingState(SamplingParams.builder().constraint(constraint("a", true)).build(), 10, EOS, new int[0]);
    IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> s.append(7));
    assertTrue(e.getMessage().contains("not allowed by the request's constraint"), e.getMessage());
  }

  private static SamplingState state(SamplingParams.Builder params, int[] prompt) {
    return new SamplingState(params.build(), V, EOS, prompt);
  }
}
