package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class RegexParserTest {

  private static boolean matches(String regex, String text) {
    return GbnfParserTest.matches(Grammar.regex(regex), text);
  }

  /** The grammar agrees with java.util.regex (full match) on every sample. */
  private static void agreesWithJdk(String regex, List<String> samples) {
    Pattern jdk = Pattern.compile(regex);
    Grammar g = Grammar.regex(regex);
    for (String s : samples) {
      assertEquals(jdk.matcher(s).matches(), GbnfParserTest.matches(g, s), regex + " on \"" + s + "\"");
    }
  }

  @Test
  void regex_commonPatterns_agreeWithJdk() {
    agreesWithJdk("[a-z]+(-[a-z0-9]+)*", List.of("abc", "abc-d1", "abc-", "-abc", "a-b-c", "", "ABC"));
    agreesWithJdk("\\d{3}-\\d{4}", List.of("555-1234", "55-1234", "5555-123", "abc-defg"));
    agreesWithJdk("(?:\\+|-)?\\d+(\\.\\d+)?([eE][+-]?\\d+)?", List.of("1", "-1.5", "+2e10", "1.", ".5", "1e"));
    agreesWithJdk("\\w+@\\w+\\.(com|org)", List.of("a@b.com", "a_1@b.org", "a@b.net", "@b.com"));
    agreesWithJdk("[^\\s,]+(,\\s*[^\\s,]+)*", List.of("a", "a, b,c", "a,", " a", "a ,b"));
    agreesWithJdk("(ab|a)(bc|c)?", List.of("a", "ab", "abc", "abbc", "ac", "abcc"));
    agreesWithJdk("a.c", List.of("abc", "a\nc", "aéc", "ac"));
    agreesWithJdk("x{2,}y{0,2}z{3}", List.of("xxzzz", "xzzz", "xxxyyzzz", "xxyyyzzz"));
    agreesWithJdk("[\\d\\-a-f]+", List.of("0-f", "g", "-"));
    agreesWithJdk("é+[à-ÿ]*", List.of("éé", "éàÿ", "e", "é€"));
  }

  @Test
  void regex_anchorsAtTheEnds_areOptional() {
    assertTrue(matches("^abc$", "abc"));
    assertTrue(matches("abc", "abc"));
    assertFalse(matches("^abc$", "abcd"));
    assertTrue(matches("a\\$", "a$"));
  }

  @Test
  void regex_lazyQuantifiers_sameLanguage() {
    assertTrue(matches("a+?b*?", "aab"));
  }

  @Test
  void regex_braceThatIsNoQuantifier_isLiteral() {
    assertTrue(matches("a{,2}", "a{,2}"));
    assertFalse(matches("a{,2}", "aa"));
    assertTrue(matches("{x}", "{x}"));
  }

  @Test
  void regex_unsupported_refusedNamingThePosition() {
    assertError("(a)\\1", "backreferences are not supported at position 3");
    assertError("a(?=b)", "lookahead is not supported at position 1");
    assertError("(?<!a)b", "lookbehind is not supported at position 0");
    assertError("\\bword", "word boundaries");
    assertError("a^b", "'^' is supported only at the start of the pattern at position 1");
    assertError("a$b", "'$' is supported only at the end of the pattern at position 1");
    assertError("(ab", "unclosed group at position 0");
    assertError("ab)", "unmatched ')' at position 2");
    assertError("*a", "nothing to repeat at position 0");
    assertError("a**", "nothing to repeat");
    assertError("[b-a]", "out of order");
    assertError("[ab", "unterminated character class");
    assertError("\\q", "unknown escape");
    assertError("(?i)a", "unsupported group syntax");
  }

  private static void assertError(String regex, String expected) {
    GrammarException e = assertThrows(GrammarException.class, () -> Grammar.regex(regex));
    assertTrue(e.getMessage().contains(expected), e.getMessage());
    assertEquals(1, e.line());
    assertTrue(e.column() >= 1);
  }

  @Test
  void choice_matchesExactlyTheStrings() {
    Grammar g = Grammar.choice(List.of("yes", "no", "yes please", ""));
    assertTrue(GbnfParserTest.matches(g, "yes"));
    assertTrue(GbnfParserTest.matches(g, "yes please"));
    assertTrue(GbnfParserTest.matches(g, ""));
    assertFalse(GbnfParserTest.matches(g, "ye"));
    assertThrows(GrammarException.class, () -> Grammar.choice(List.of()));
  }

  @Test
  void choice_thousandsOfStringsWithSharedPrefixes_matchExactly() {
    List<String> options = new java.util.ArrayList<>();
    for (int i = 0; i < 20_000; i++) options.add("item-" + i + (i % 3 == 0 ? "é" : "") + (i % 7 == 0 ? "😀" : ""));
    Grammar g = Grammar.choice(options);
    CompiledGrammar c = Grammars.compile(g, ByteVocabulary.bytes());
    java.util.Set<String> set = new java.util.HashSet<>(options);
    java.util.SplittableRandom random = new java.util.SplittableRandom(3);
    for (int k = 0; k < 300; k++) {
      String s = options.get(random.nextInt(options.size()));
      assertTrue(accepts(c, s), s);
      String other = s.substring(0, random.nextInt(s.length())) + (random.nextBoolean() ? "7" : "");
      assertEquals(set.contains(other), accepts(c, other), other);
    }
  }

  private static boolean accepts(CompiledGrammar c, String s) {
    GrammarMatcher m = c.newMatcher();
    return m.acceptBytes(s.getBytes(java.nio.charset.StandardCharsets.UTF_8)) && m.isComplete();
  }
}
