package sphinxserve.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;

class TrainingCorpusTest {

  @Test
  void shippedText_hasTemplateAndNoComments() {
    String text = TrainingCorpus.shippedText();
    assertTrue(text.contains("A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions."));
    assertTrue(text.contains("### Human:"));
    assertTrue(text.contains("### Assistant:"));
    assertFalse(text.lines().anyMatch(line -> line.startsWith("# ")));
  }

  @Test
  void pseudoWords_sameSeed_sameWords() {
    assertEquals(List.copyOf(TrainingCorpus.pseudoWords(1_000, 5)), List.copyOf(TrainingCorpus.pseudoWords(1_000, 5)));
    assertNotEquals(List.copyOf(TrainingCorpus.pseudoWords(1_000, 5)), List.copyOf(TrainingCorpus.pseudoWords(1_000, 6)));
  }

  @Test
  void pieceCounts_realTextDominates_everyRealPieceBecomesOneToken() {
    Set<String> realPieces = new HashSet<>();
    Matcher m = ByteLevel.SPLIT.matcher(TrainingCorpus.shippedText());
    while (m.find()) {
      realPieces.add(ByteLevel.encode(m.group().getBytes(StandardCharsets.UTF_8)));
    }
    BpeModel model = BpeTrainer.train(TrainingCorpus.pieceCounts(64_000, 1), 31_995);
    Set<String> tokens = new HashSet<>(model.tokens());
    for (String piece : realPieces) {
      assertTrue(tokens.contains(piece), () -> "real piece '" + piece + "' is not one token");
    }
    System.out.printf("corpus: %d distinct real pieces, all single tokens in a 32k vocabulary%n", realPieces.size());
  }
}
