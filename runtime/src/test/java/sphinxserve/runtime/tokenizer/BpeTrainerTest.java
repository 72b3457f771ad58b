package sphinxserve.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BpeTrainerTest {

  @Test
  void train_smallCorpus_mergesMostFrequentPairFirst() {
    // The Hugging Face course example: "ug" (20), then "un" (16), then "h"+"ug" (15).
    Map<String, Long> pieces = Map.of("hug", 10L, "pug", 5L, "pun", 12L, "bun", 4L, "hugs", 5L);
    BpeModel model = BpeTrainer.train(pieces, 259);
    assertEquals(List.of("u g", "u n", "h ug"), joined(model.merges()));
    assertEquals(List.of("ug", "un", "hug"), model.tokens().subList(256, 259));
  }

  @Test
  void train_tiedCounts_smallerLeftStringFirst() {
    BpeModel model = BpeTrainer.train(Map.of("cd", 1L, "ab", 1L, "xy", 1L), 259);
    assertEquals(List.of("a b", "c d", "x y"), joined(model.merges()));
  }

  @Test
  void train_repeatedSymbol_mergesNonOverlapping() {
    BpeModel model = BpeTrainer.train(Map.of("aaaa", 1L), 258);
    assertEquals(List.of("a a", "aa aa"), joined(model.merges()));
  }

  @Test
  void train_bytesAreByteLevelChars() {
    BpeModel model = BpeTrainer.train(Map.of(" é", 3L), 258);
    // ' ' is 'Ġ'; 'é' is the two bytes C3 A9, shown as 'Ã' and '©'.
    assertEquals(List.of("Ã ©", "Ġ Ã©"), joined(model.merges()));
    assertEquals("Ġ", model.tokens().get(' '));
  }

  @Test
  void train_corpusTooSmall_throws() {
    assertThrows(BpeTrainer.CorpusTooSmallException.class, () -> BpeTrainer.train(Map.of("ab", 1L), 258));
  }

  @Test
  void train_sameInput_sameModel() {
    Map<String, Long> pieces = TrainingCorpus.pieceCounts(6_000, 11);
    BpeModel a = BpeTrainer.train(pieces, 4_000);
    BpeModel b = BpeTrainer.train(Map.copyOf(pieces), 4_000);
    assertEquals(a.tokens(), b.tokens());
    assertEquals(a.merges().size(), b.merges().size());
    for (int i = 0; i < a.merges().size(); i++) {
      assertArrayEquals(a.merges().get(i), b.merges().get(i));
    }
  }

  @Test
  void train_32kVocabulary_takesSeconds() {
    Map<String, Long> pieces = TrainingCorpus.pieceCounts(64_000, 1);
    long start = System.nanoTime();
    BpeModel model = BpeTrainer.train(pieces, 31_995);
    long millis = (System.nanoTime() - start) / 1_000_000;
    System.out.printf("BPE: %d merges from %d pieces in %d ms%n", model.merges().size(), pieces.size(), millis);
    assertEquals(31_995, model.tokens().size());
    assertTrue(millis < 20_000, "training took " + millis + " ms");
  }

  private static List<String> joined(List<String[]> merges) {
    return merges.stream().map(m -> m[0] + " " + m[1]).toList();
  }
}
