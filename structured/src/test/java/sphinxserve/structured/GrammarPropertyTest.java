package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Random sentences drawn from a grammar are accepted; mutated ones are rejected where an independent oracle says so. */
class GrammarPropertyTest {
  private static final String MUTATION_CHARS = "{}[]\",:0a \\\n-.eé😀";
  private static final ObjectMapper JSON = new ObjectMapper();

  private static String mutate(String s, SplittableRandom random) {
    int[] cps = s.codePoints().toArray();
    int at = cps.length == 0 ? 0 : random.nextInt(cps.length);
    int[] pool = MUTATION_CHARS.codePoints().toArray();
    int c = pool[random.nextInt(pool.length)];
    StringBuilder sb = new StringBuilder();
    int kind = cps.length == 0 ? 1 : random.nextInt(3);
    for (int i = 0; i <= cps.length; i++) {
      if (i == at && kind == 1) sb.appendCodePoint(c);
      if (i == cps.length) break;
      if (i == at && kind == 0) continue; // delete
      sb.appendCodePoint(i == at && kind == 2 ? c : cps[i]);
    }
    return sb.toString();
  }

  private static boolean jsonValid(String s) {
    try {
      JSON.readTree(s);
      return !s.isBlank();
    } catch (JsonProcessingException e) {
      return false;
    }
  }

  @Test
  void regexGrammars_agreeWithJdkOnSentencesAndMutations() {
    List<String> patterns = List.of(
        "[A-Z][a-z]{1,8}( [A-Z][a-z]{1,8})*, \\d{1,5} (street|road)",
        "(\\+|-)?\\d+(\\.\\d+)?([eE][+-]?\\d+)?",
        "[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}",
        "\\[(0\\.\\d\\d|1\\.00),(0\\.\\d\\d|1\\.00)\\](;\\[(0\\.\\d\\d|1\\.00),(0\\.\\d\\d|1\\.00)\\])*",
        "(é|ü|[α-ω])+[^a-z\\s]?");
    SplittableRandom random = new SplittableRandom(7);
    int numRejected = 0;
    for (String p : patterns) {
      Grammar g = Grammar.regex(p);
      Pattern jdk = Pattern.compile(p);
      SentenceGenerator gen = new SentenceGenerator(g, random.nextLong(), 40);
      for (int i = 0; i < 200; i++) {
        String s = gen.next();
        assertTrue(jdk.matcher(s).matches(), "generator drew a non-sentence " + s);
        assertTrue(GbnfParserTest.matches(g, s), p + " should accept " + s);
        String mutated = mutate(s, random);
        boolean expected = jdk.matcher(mutated).matches();
        assertEquals(expected, GbnfParserTest.matches(g, mutated), p + " on mutated \"" + mutated + "\"");
        if (!expected) numRejected++;
      }
    }
    assertTrue(numRejected > 500, "mutations mostly invalid: " + numRejected);
  }

  @Test
  void jsonGrammars_acceptTheirSentences_rejectInvalidJson() {
    for (String gbnf : List.of(TestGrammars.json(), TestGrammars.objectWithProperties(20))) {
      Grammar g = Grammar.gbnf(gbnf);
      SentenceGenerator gen = new SentenceGenerator(g, 11, 12);
      SplittableRandom random = new SplittableRandom(13);
      int numRejected = 0;
      for (int i = 0; i < 150; i++) {
        String s = gen.next();
        assertTrue(GbnfParserTest.matches(g, s), "should accept " + s);
        if (!jsonValid(s)) { // "\uD913": the grammar (as llama.cpp's) allows escaped lone surrogates, Jackson not
          assertTrue(s.matches("(?s).*\\\\u[dD][89a-fA-F].*"), "generator drew invalid JSON " + s.replace("\n", "\\n"));
          continue;
        }
        String mutated = mutate(s, random);
        if (!jsonValid(mutated)) {
          assertFalse(GbnfParserTest.matches(g, mutated), "accepted invalid JSON " + mutated);
          numRejected++;
        }
      }
      assertTrue(numRejected > 50, "mutations mostly invalid: " + numRejected);
    }
  }

  @Test
  void prefixesOfSentences_areValidPrefixes_butIncomplete() {
    Grammar g = Grammar.gbnf(TestGrammars.objectWithProperties(20));
    CompiledGrammar c = Grammars.compile(g, ByteVocabulary.bytes());
    SentenceGenerator gen = new SentenceGenerator(g, 3, 12);
    for (int i = 0; i < 20; i++) {
      byte[] s = gen.next().getBytes(java.nio.charset.StandardCharsets.UTF_8);
      GrammarMatcher m = c.newMatcher();
      for (int k = 0; k < s.length; k++) {
        assertFalse(m.isComplete() && k < s.length - 1 && s[s.length - 1] == '}', "complete before the closing brace");
        assertTrue(m.accept(s[k] & 0xFF), "byte " + k);
      }
      assertTrue(m.isComplete());
    }
  }
}
