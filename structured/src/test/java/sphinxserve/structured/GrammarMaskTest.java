package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

class GrammarMaskTest {

  /** The mask by brute force: every token's bytes walked through the matcher one by one; EOS iff complete. */
  static long[] bruteForce(GrammarMatcher m, TokenVocabulary v) {
    long[] bits = new long[v.numWords()];
    for (int id = 0; id < v.size(); id++) {
      boolean allowed;
      if (v.isEos(id)) {
        allowed = m.isComplete();
      } else {
        byte[] bytes = v.tokenBytes(id);
        allowed = bytes.length > 0 && m.acceptBytes(bytes);
        if (allowed) m.rollback(1);
      }
      if (allowed) bits[id >>> 6] |= 1L << id;
    }
    return bits;
  }

  private static List<Integer> ids(long[] bits, int size) {
    List<Integer> ids = new ArrayList<>();
    for (int id = 0; id < size; id++) {
      if ((bits[id >>> 6] >>> id & 1) != 0) ids.add(id);
    }
    return ids;
  }

  /**
   * Walks {@code numSteps} random allowed tokens (preferring long ones, so tokens span several grammar symbols),
   * checking the mask against brute force at every step; answers how many steps were checked.
   */
  private static int walkAndCheck(CompiledGrammar g, long seed, int numSteps) {
    TokenVocabulary v = g.vocabulary();
    SplittableRandom random = new SplittableRandom(seed);
    GrammarMatcher m = g.newMatcher();
    long[] mask = new long[v.numWords() + 1];
    int step = 0;
    for (; step < numSteps && !m.isTerminated(); step++) {
      m.fillAllowed(mask);
      long[] expected = bruteForce(m, v);
      assertArrayEquals(expected, java.util.Arrays.copyOf(mask, expected.length), "step " + step + " seed " + seed);
      assertEquals(0L, mask[mask.length - 1], "words past the vocabulary are cleared");
      java.util.Arrays.fill(mask, 0x5555_5555_5555_5555L);
      m.fillAllowed(mask); // from the cache this time
      assertArrayEquals(expected, java.util.Arrays.copyOf(mask, expected.length), "cached, step " + step + " seed " + seed);
      assertEquals(0L, mask[mask.length - 1]);
      List<Integer> allowed = ids(mask, v.size());
      allowed.removeIf(v::isEos);
      if (allowed.isEmpty()) break;
      int best = allowed.get(random.nextInt(allowed.size()));
      if (random.nextInt(3) == 0) { // a token with punctuation, if any: moves through the structure (keys, values, nesting)
        List<Integer> structural = new ArrayList<>(allowed);
        structural.removeIf(id -> punctuation(v, id) == 0);
        if (!structural.isEmpty()) {
          assertTrue(m.accept(structural.get(random.nextInt(structural.size()))));
          continue;
        }
      }
      boolean longest = random.nextBoolean(); // else prefer tokens with punctuation, to move through the structure
      for (int k = 0; k < 6; k++) {
        int other = allowed.get(random.nextInt(allowed.size()));
        if (longest ? v.tokenBytes(other).length > v.tokenBytes(best).length : punctuation(v, other) > punctuation(v, best)) {
          best = other;
        }
      }
      assertTrue(m.accept(best));
    }
    return step;
  }

  private static int punctuation(TokenVocabulary v, int id) {
    int n = 0;
    for (byte b : v.tokenBytes(id)) {
      if ("\"{}[],:".indexOf(b) >= 0) n++;
    }
    return n;
  }

  @Test
  void mask_equalsBruteForce_realVocabulary_severalGrammars() {
    TokenVocabulary v = RealVocabulary.get();
    List<Grammar> grammars = List.of(
        Grammar.gbnf(TestGrammars.json()),
        Grammar.gbnf(TestGrammars.objectWithProperties(20)),
        Grammar.regex("[A-Z][a-z]+( [A-Z][a-z]+)*, \\d{1,5} (street|road)"),
        Grammar.choice(List.of("positive", "negative", "neutral", "mixed feelings")),
        Grammar.gbnf("root ::= ([é-ü] | [一-龥] | \"😀\" | [a-c])+ \".\""));
    int seed = 0;
    for (Grammar grammar : grammars) {
      CompiledGrammar g = Grammars.compile(grammar, v);
      for (int walk = 0; walk < 3; walk++) {
        int steps = walkAndCheck(g, seed++, 30);
        assertTrue(steps > 0);
      }
    }
  }

  @Test
  void mask_eosOnlyWhenComplete_andSpecialsNever() {
    TokenVocabulary v = RealVocabulary.get();
    CompiledGrammar g = Grammars.compile(Grammar.choice(List.of("yes", "yes!")), v);
    GrammarMatcher m = g.newMatcher();
    long[] mask = new long[v.numWords()];
    int eos = v.eosIds()[0];
    m.fillAllowed(mask);
    assertFalse((mask[eos >>> 6] >>> eos & 1) != 0);
    for (int special = 0; special < 5; special++) assertEquals(0, mask[0] >>> special & 1, "special id " + special);
    assertTrue(m.acceptBytes("yes".getBytes(StandardCharsets.UTF_8)));
    m.fillAllowed(mask);
    assertTrue((mask[eos >>> 6] >>> eos & 1) != 0);
    assertTrue(m.isComplete());
    assertFalse(m.isTerminated());
    assertTrue(m.acceptBytes("!".getBytes(StandardCharsets.UTF_8)));
    assertTrue(m.isTerminated());
    m.fillAllowed(mask);
    assertEquals(List.of(eos), ids(mask, v.size()));
    assertTrue(m.accept(eos));
    assertTrue(m.isEnded());
    assertFalse(m.accept(eos));
  }

  /** A vocabulary of a few multi-symbol and partial-UTF-8 tokens, checked by hand. */
  @Test
  void mask_tokensSpanningSymbolsAndPartialCharacters() {
    byte[] smile = "😀".getBytes(StandardCharsets.UTF_8); // F0 9F 98 80
    List<byte[]> tokens = List.of(
        "{\"".getBytes(StandardCharsets.UTF_8),        // 0: two symbols
        "a\":".getBytes(StandardCharsets.UTF_8),       // 1: ends a key and adds the colon
        " 1}".getBytes(StandardCharsets.UTF_8),        // 2: space, value, close
        new byte[] {smile[0], smile[1]},               // 3: first half of 😀
        new byte[] {smile[2], smile[3]},               // 4: second half
        "}".getBytes(StandardCharsets.UTF_8),          // 5
        new byte[0],                                   // 6: EOS
        new byte[0],                                   // 7: another special
        "é".getBytes(StandardCharsets.UTF_8),          // 8
        new byte[] {(byte) 0xC3});                     // 9: first byte of é
    TokenVocabulary v = TokenVocabulary.of(tokens, List.of(6));
    CompiledGrammar g = Grammars.compile(Grammar.gbnf("root ::= \"{\\\"\" [a😀é]+ \"\\\":\" \" \"? [0-9] \"}\""), v);
    GrammarMatcher m = g.newMatcher();
    long[] mask = new long[1];
    m.fillAllowed(mask);
    assertEquals(List.of(0), ids(mask, v.size()));
    assertTrue(m.accept(0));
    m.fillAllowed(mask);
    assertEquals(List.of(1, 3, 8, 9), ids(mask, v.size()));
    assertTrue(m.accept(3));
    m.fillAllowed(mask);
    assertEquals(List.of(4), ids(mask, v.size()), "inside 😀 only its second half");
    assertTrue(m.accept(4));
    assertTrue(m.accept(1));
    m.fillAllowed(mask);
    assertEquals(List.of(2), ids(mask, v.size()));
    assertFalse(m.accept(5));
    assertFalse(m.accept(7));
    assertTrue(m.accept(2));
    m.fillAllowed(mask);
    assertEquals(List.of(6), ids(mask, v.size()));
    assertTrue(m.isTerminated());
  }

  @Test
  void mask_sharedGrammarAcrossThreads_equalsBruteForce() throws Exception {
    TokenVocabulary v = RealVocabulary.get();
    CompiledGrammar g = Grammars.compile(Grammar.gbnf(TestGrammars.objectWithProperties(6)), v);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<Integer>> walks = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        long seed = 100 + t % 2; // pairs of threads walk the same path, racing on the same states
        walks.add(pool.submit(() -> walkAndCheck(g, seed, 10)));
      }
      for (Future<Integer> w : walks) assertTrue(w.get() > 0);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void maskStats_countAMissPerNewConfiguration_andAHitPerRevisit() {
    TokenVocabulary v = ByteVocabulary.bytes();
    CompiledGrammar g = Grammars.compile(Grammar.regex("ab*"), v);
    long[] mask = new long[v.numWords()];
    GrammarMatcher m = g.newMatcher();
    m.fillAllowed(mask); // start: computed
    assertTrue(m.acceptBytes("a".getBytes(StandardCharsets.UTF_8)));
    m.fillAllowed(mask); // after "a": computed
    assertTrue(m.acceptBytes("b".getBytes(StandardCharsets.UTF_8)));
    m.fillAllowed(mask); // after "ab": inside the b* loop, a hit if its configuration equals the one after "a"
    g.newMatcher().fillAllowed(mask); // the start again: cached
    CompiledGrammar.MaskStats stats = g.maskStats();
    assertEquals(4, stats.hits() + stats.misses(), "every fillAllowed is a hit or a miss");
    assertTrue(stats.misses() >= 2 && stats.misses() <= 3, "the start and after \"a\" are computed once each: " + stats);
    assertTrue(stats.hits() >= 1, "the start's second mask is a hit: " + stats);
    assertTrue(stats.missNanos() > 0, "misses are timed: " + stats);
  }

  @Test
  void matcher_rollbackAndCopy_restoreThePosition() {
    TokenVocabulary v = ByteVocabulary.bytes();
    CompiledGrammar g = Grammars.compile(Grammar.gbnf(TestGrammars.json()), v);
    GrammarMatcher m = g.newMatcher();
    assertTrue(m.acceptBytes("{\"a\"".getBytes(StandardCharsets.UTF_8)));
    GrammarMatcher copy = m.copy();
    assertTrue(m.accept(':'));
    assertTrue(m.accept('1'));
    assertFalse(copy.accept('1'));
    m.rollback(2);
    assertEquals(1, m.numAccepted());
    assertFalse(m.accept('1'));
    assertTrue(m.accept(':'));
    assertTrue(copy.accept(':'));
  }
}
