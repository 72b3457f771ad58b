package sphinxserve.structured;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A context-free grammar over Unicode code points, parsed and checked but not yet bound to a vocabulary:
 * named rules, the start rule {@value #ROOT}. Immutable and thread-safe. {@link Grammars#compile} binds it to a
 * tokenizer's vocabulary.
 *
 * <p>Made from GBNF text ({@link #gbnf}, llama.cpp's dialect), a regular expression ({@link #regex}) or a list of
 * strings ({@link #choice}); all three give the same IR, so they compile and match alike.
 */
public final class Grammar {

  /** Name of the start rule. */
  public static final String ROOT = "root";

  /** Longest GBNF or regex source accepted, in chars: generated JSON-Schema grammars stay far below it. */
  public static final int MAX_SOURCE_CHARS = 4 << 20;

  /** Most strings a {@link #choice} may hold. */
  public static final int MAX_CHOICES = 100_000;

  /** A rule: its name, its right-hand side, and where it was defined (line 0 for generated rules). */
  record Rule(String name, Expr body, int line, int column) {}

  private final Map<String, Rule> rules;

  Grammar(List<Rule> rules) {
    Map<String, Rule> byName = new LinkedHashMap<>();
    for (Rule r : rules) byName.put(r.name(), r);
    this.rules = java.util.Collections.unmodifiableMap(byName);
  }

  /**
   * Parses GBNF (llama.cpp's grammar format): {@code name ::= alternatives} rules, start rule {@code root},
   * string literals with escapes, character classes over code points, {@code .}, groups, {@code | * + ?},
   * {@code {m} {m,} {m,n}}, {@code #} comments.
   *
   * @throws GrammarException naming the line and column of a syntax error, an undefined rule, or a missing root
   */
  public static Grammar gbnf(String text) {
    Objects.requireNonNull(text, "text");
    return new GbnfParser(text).parse();
  }

  /**
   * Parses a regular expression the whole output must match (ECMAScript syntax, the subset JSON Schema's
   * {@code pattern} uses: literals, classes with {@code \d \w \s} and negation, {@code .} (not a line
   * terminator), groups, alternation, {@code * + ? {m,n}} (lazy forms too), {@code ^} and {@code $} only at
   * the ends).
   *
   * @throws GrammarException naming the position of a syntax error or an unsupported feature (backreferences,
   *     lookaround, word boundaries, anchors inside)
   */
  public static Grammar regex(String pattern) {
    Objects.requireNonNull(pattern, "pattern");
    return new Grammar(List.of(new Rule(ROOT, new RegexParser(pattern).parse(), 1, 1)));
  }

  /**
   * A grammar whose sentences are exactly {@code options}.
   *
   * @throws GrammarException when the list is empty or longer than {@link #MAX_CHOICES}
   */
  public static Grammar choice(List<String> options) {
    Objects.requireNonNull(options, "options");
    if (options.isEmpty()) throw new GrammarException("choice: needs at least one string");
    if (options.size() > MAX_CHOICES) throw new GrammarException("choice: at most " + MAX_CHOICES + " strings, was " + options.size());
    java.util.TreeSet<String> sorted = new java.util.TreeSet<>();
    for (int i = 0; i < options.size(); i++) {
      String s = Objects.requireNonNull(options.get(i), "choice[" + i + "]");
      if (!isWellFormed(s)) throw new GrammarException("choice[" + i + "]: not well-formed UTF-16 (a lone surrogate)");
      sorted.add(s);
    }
    return new Grammar(List.of(new Rule(ROOT, factor(new ArrayList<>(sorted), 0, sorted.size(), 0), 0, 0)));
  }

  /**
   * The strings {@code sorted[from, to)}, which share their first {@code offset} chars, as a prefix tree of
   * alternatives: a configuration then holds one stack per distinct next character, not one per string (a
   * choice of thousands of strings stays small).
   */
  private static Expr factor(List<String> sorted, int from, int to, int offset) {
    List<Expr> options = new ArrayList<>();
    int i = from;
    if (sorted.get(i).length() == offset) { // the shared prefix itself is one of the strings
      options.add(Expr.EMPTY);
      i++;
    }
    while (i < to) {
      int cp = sorted.get(i).codePointAt(offset);
      int j = i + 1;
      while (j < to && sorted.get(j).codePointAt(offset) == cp) j++;
      // The group's longest common prefix from offset (sorted: the first and last string bound it).
      String first = sorted.get(i);
      String last = sorted.get(j - 1);
      int end = offset + Character.charCount(cp);
      while (end < first.length() && end < last.length() && first.charAt(end) == last.charAt(end)) end++;
      if (end < first.length() && end < last.length() && Character.isLowSurrogate(first.charAt(end))) end--; // whole code points
      Expr prefix = new Expr.Literal(first.substring(offset, end));
      options.add(j - i == 1 && end == first.length() ? prefix : new Expr.Seq(List.of(prefix, factor(sorted, i, j, end))));
      i = j;
    }
    return options.size() == 1 ? options.get(0) : new Expr.Alt(List.copyOf(options));
  }

  /** The rules by name, in definition order. */
  Map<String, Rule> rules() {
    return rules;
  }

  /** Names of the rules, in definition order. */
  public List<String> ruleNames() {
    return List.copyOf(rules.keySet());
  }

  static boolean isWellFormed(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) return false;
        i++;
      } else if (Character.isLowSurrogate(c)) {
        return false;
      }
    }
    return true;
  }
}
