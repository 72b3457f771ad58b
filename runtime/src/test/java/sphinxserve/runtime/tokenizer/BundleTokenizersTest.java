package sphinxserve.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class BundleTokenizersTest {

  private static final List<String> SPECIALS = BundleTokenizers.DEFAULT_SPECIAL_TOKENS;
  private static final long SEED = 42;

  /** The bench preset, built once: it is the slow one. */
  private static String bench;

  @BeforeAll
  static void buildBench() {
    long start = System.nanoTime();
    bench = BundleTokenizers.build(32_000, SPECIALS, SEED);
    System.out.printf("tokenizer bench (32000): built in %d ms, %d bytes%n", (System.nanoTime() - start) / 1_000_000, bench.length());
  }

  @Test
  void build_presets_haveExactVocabSize() throws Exception {
    for (int vocabSize : new int[] {512, 2_000}) {
      long start = System.nanoTime();
      String json = BundleTokenizers.build(vocabSize, SPECIALS, SEED);
      System.out.printf("tokenizer preset %d: built in %d ms%n", vocabSize, (System.nanoTime() - start) / 1_000_000);
      try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(json)) {
        assertEquals(vocabSize, tokenizer.vocabSize());
      }
    }
    try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(bench)) {
      assertEquals(32_000, tokenizer.vocabSize());
    }
  }

  @Test
  void build_sameArguments_byteIdentical() {
    assertArrayEquals(BundleTokenizers.buildBytes(2_000, SPECIALS, SEED), BundleTokenizers.buildBytes(2_000, SPECIALS, SEED));
    assertEquals(bench, BundleTokenizers.build(32_000, SPECIALS, SEED));
  }

  @Test
  void build_otherSeed_differentOutput() {
    String other = BundleTokenizers.build(32_000, SPECIALS, SEED + 1);
    assertFalse(other.equals(bench));
  }

  @Test
  void build_bench_commonWordsAreSingleTokens() throws Exception {
    try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(bench)) {
      for (String word : List.of(" the", " person", " image", " left", " shoulder", " Assistant", "###", " Human", " bounding", " coordinate", "45", "0")) {
        assertEquals(1, tokenizer.encode(word).length, () -> "'" + word + "' should be one token");
      }
      String prompt = "A chat between a curious human and an artificial intelligence assistant.";
      assertTrue(tokenizer.encode(prompt).length <= 14, "the chat template encodes compactly");
    }
  }

  @Test
  void build_specialTokensTakeFirstIds() throws Exception {
    try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(BundleTokenizers.build(512, SPECIALS, SEED))) {
      for (int id = 0; id < SPECIALS.size(); id++) {
        assertTrue(tokenizer.isSpecial(id));
        assertEquals(0, tokenizer.tokenBytes(id).length);
      }
      assertFalse(tokenizer.isSpecial(SPECIALS.size()));
    }
  }

  @Test
  void build_vocabTooSmall_rejected() {
    assertThrows(IllegalArgumentException.class, () -> BundleTokenizers.build(260, SPECIALS, SEED));
  }
}
