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
    List<Expr> alts = new ArrayList<>(options.size());
    for (int i = 0; i < options.size(); i++) {
      String s = Objects.requireNonNull(options.get(i), "choice[" + i + "]");
      if (!isWellFormed(s)) throw new GrammarException("choice[" + i + "]: not well-formed UTF-16 (a lone surrogate)");
      alts.add(new Expr.Literal(s));
    }
    return new Grammar(List.of(new Rule(ROOT, new Expr.Alt(alts), 0, 0)));
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
