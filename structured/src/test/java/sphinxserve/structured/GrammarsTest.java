package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class GrammarsTest {

  @Test
  void lower_overSizeBudget_refused() {
    Grammar g = Grammar.gbnf("root ::= [a-z]{0,5000} [0-9]{0,5000}");
    GrammarException e = assertThrows(GrammarException.class, () -> ByteProgram.lower(g, 10_000, System.nanoTime() + 10_000_000_000L));
    assertTrue(e.getMessage().contains("too large once compiled (more than 10000 elements"), e.getMessage());
    assertEquals(0, e.line());
    assertTrue(ByteProgram.lower(g, 100_000, System.nanoTime() + 10_000_000_000L).size() > 10_000);
  }

  @Test
  void lower_pastDeadline_refused() {
    Grammar g = Grammar.gbnf("root ::= [a-z]{0,50000}");
    GrammarException e = assertThrows(GrammarException.class, () -> ByteProgram.lower(g, 1_000_000, System.nanoTime() - 1));
    assertTrue(e.getMessage().contains("exceeded its time budget"), e.getMessage());
  }

  @Test
  void compile_nestedCountedRepetitions_growLinearlyNotMultiplied() {
    // ((x{100}){100}){100} would be a million copies if repetitions copied their bodies.
    Grammar g = Grammar.gbnf("root ::= ((\"ab\"{100}){100}){100} | ((\"cd\"{5}){4}){3}");
    CompiledGrammar c = Grammars.compile(g, ByteVocabulary.bytes());
    assertTrue(c.programSize() < 2_000, "elements: " + c.programSize());
    GrammarMatcher m = c.newMatcher();
    assertTrue(m.acceptBytes("cd".repeat(60).getBytes(StandardCharsets.UTF_8)));
    assertTrue(m.isTerminated());
  }

  @Test
  void gbnf_largeGeneratedGrammar_parsesAndMatches() {
    StringBuilder sb = new StringBuilder("root ::= \"[\" r0 (\",\" r0)* \"]\"\n");
    int numRules = 5_000;
    for (int i = 0; i < numRules - 1; i++) sb.append("r").append(i).append(" ::= \"k").append(i % 10).append("\" r").append(i + 1).append(" | \"x\"\n");
    sb.append("r").append(numRules - 1).append(" ::= \"end\"\n");
    CompiledGrammar c = Grammars.compile(Grammar.gbnf(sb.toString()), ByteVocabulary.bytes());
    GrammarMatcher m = c.newMatcher();
    assertTrue(m.acceptBytes("[k0k1x,k0k1k2x]".getBytes(StandardCharsets.UTF_8)));
    assertTrue(m.isComplete());
  }

  @Test
  void compile_rootMatchingNothingButEmpty_isComplete() {
    GrammarMatcher m = Grammars.compile(Grammar.gbnf("root ::= \"\""), ByteVocabulary.bytes()).newMatcher();
    assertTrue(m.isTerminated());
    long[] mask = new long[ByteVocabulary.bytes().numWords()];
    m.fillAllowed(mask);
    assertEquals(1L << (256 - 256), mask[4], "only EOS (id 256)");
  }
}
