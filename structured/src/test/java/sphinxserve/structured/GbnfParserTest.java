package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class GbnfParserTest {

  static String resource(String name) {
    try (InputStream in = GbnfParserTest.class.getResourceAsStream(name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** Whether the whole of {@code text} is a sentence of {@code gbnf}, matched byte by byte. */
  static boolean matches(Grammar g, String text) {
    GrammarMatcher m = Grammars.compile(g, ByteVocabulary.bytes()).newMatcher();
    return m.acceptBytes(text.getBytes(StandardCharsets.UTF_8)) && m.isComplete();
  }

  private static GrammarException error(String gbnf) {
    return assertThrows(GrammarException.class, () -> Grammar.gbnf(gbnf));
  }

  @Test
  void gbnf_llamaJsonGrammar_parsesAndMatches() {
    Grammar json = Grammar.gbnf(resource("json.gbnf"));
    assertTrue(json.ruleNames().containsAll(List.of("root", "value", "object", "array", "string", "number", "ws")));
    assertTrue(matches(json, "{\"a\": [1, 2.5e3, \"x\\n\\u00e9\", true, null, {}], \"b\": \"é😀\"}"));
    assertTrue(matches(json, "{}"));
    assertFalse(matches(json, "{\"a\" 1}"));
    assertFalse(matches(json, "[1]"));
    assertFalse(matches(json, "{\"a\": 01}"));
  }

  @Test
  void gbnf_literalEscapes_decodeToCodePoints() {
    Grammar g = Grammar.gbnf("root ::= \"\\n\\t\\\"\\\\\\x41\\u00e9\\U0001F600\"");
    assertTrue(matches(g, "\n\t\"\\Aé😀"));
    assertFalse(matches(g, "\n\t\"\\Ae😀"));
  }

  @Test
  void gbnf_classes_overCodePoints() {
    Grammar g = Grammar.gbnf("root ::= [a-zé-ü_] [^\"\\\\]");
    assertTrue(matches(g, "aZ"));
    assertTrue(matches(g, "ñ😀"));
    assertTrue(matches(g, "_€"));
    assertFalse(matches(g, "A1"));
    assertFalse(matches(g, "a\""));
    assertFalse(matches(g, "a\\"));
  }

  @Test
  void gbnf_repetitions_countBounds() {
    Grammar g = Grammar.gbnf("root ::= \"a\"{2} \"b\"{1,3} \"c\"{2,} \"d\"? \"e\"* \"f\"+ \"g\"{,2}");
    assertTrue(matches(g, "aabccf"));
    assertTrue(matches(g, "aabbbcccccdeeeffgg"));
    assertFalse(matches(g, "abccf"));
    assertFalse(matches(g, "aabbbbccf"));
    assertFalse(matches(g, "aabcf"));
    assertFalse(matches(g, "aabccfggg"));
    assertFalse(matches(g, "aabcc"));
  }

  @Test
  void gbnf_groupsAlternativesAndDot() {
    Grammar g = Grammar.gbnf("""
        root ::= greeting (" " name)+ # comment here
        greeting ::= "hi" | "hello"
          | "hey"
        name ::= ( [A-Z]
          [a-z]* ) | "."
        """);
    assertTrue(matches(g, "hi Bob"));
    assertTrue(matches(g, "hey A Bc"));
    assertFalse(matches(g, "hey bob"));
    Grammar any = Grammar.gbnf("root ::= . .");
    assertTrue(matches(any, "é\n"));
    assertFalse(matches(any, "abc"));
  }

  @Test
  void gbnf_errors_nameLineAndColumn() {
    GrammarException e = error("root ::= \"a\" foo\n");
    assertEquals(1, e.line());
    assertEquals(14, e.column());
    assertTrue(e.getMessage().contains("undefined rule 'foo'"), e.getMessage());

    e = error("root ::= x\nx ::= \"a\n");
    assertEquals(2, e.line());
    assertEquals(7, e.column());
    assertTrue(e.getMessage().contains("unterminated string literal"), e.getMessage());

    e = error("root ::= [a-\n");
    assertTrue(e.getMessage().contains("unterminated character class"), e.getMessage());

    e = error("root ::= (\"a\"\n");
    assertTrue(e.getMessage().contains("expected ')'"), e.getMessage());

    e = error("root ::= \"a\" ]\n");
    assertEquals(14, e.column());

    e = error("root = \"a\"");
    assertTrue(e.getMessage().contains("expected '::='"), e.getMessage());

    e = error("root ::= \"\\q\"");
    assertTrue(e.getMessage().contains("unknown escape"), e.getMessage());

    e = error("root ::= [z-a]");
    assertTrue(e.getMessage().contains("out of order"), e.getMessage());

    e = error("root ::= \"a\"{3,2}");
    assertTrue(e.getMessage().contains("max below min"), e.getMessage());

    e = error("rot ::= \"a\"");
    assertTrue(e.getMessage().contains("no rule named 'root'"), e.getMessage());

    e = error("root ::= \"a\"\nroot ::= \"b\"");
    assertEquals(2, e.line());
    assertTrue(e.getMessage().contains("defined twice"), e.getMessage());

    e = error("root ::= \"a\"{1000000}");
    assertTrue(e.getMessage().contains("repetition count above"), e.getMessage());
  }

  @Test
  void gbnf_leftRecursion_refusedNamingTheRule() {
    GrammarException e = error("root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]");
    assertEquals(2, e.line());
    assertTrue(e.getMessage().contains("rule 'expr' is left-recursive"), e.getMessage());

    e = error("root ::= a\na ::= b? c\nb ::= \"x\"\nc ::= \"y\"? a");
    assertTrue(e.getMessage().contains("left-recursive"), e.getMessage());
    assertTrue(e.getMessage().contains("a -> c -> a") || e.getMessage().contains("c -> a -> c"), e.getMessage());
  }

  @Test
  void gbnf_nullableLoops_matchWithoutRunningAway() {
    Grammar g = Grammar.gbnf("root ::= (\"a\"?)* (\"b\"* | \"c\")* \"d\"");
    assertTrue(matches(g, "d"));
    assertTrue(matches(g, "aaabbcbd"));
    assertFalse(matches(g, "da"));
  }

  @Test
  void gbnf_rightRecursion_isFine() {
    Grammar g = Grammar.gbnf("root ::= list\nlist ::= \"x\" (\",\" list)?");
    assertTrue(matches(g, "x,x,x"));
    assertFalse(matches(g, "x,"));
  }
}
