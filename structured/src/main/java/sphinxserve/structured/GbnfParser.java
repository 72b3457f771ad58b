package sphinxserve.structured;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses GBNF, llama.cpp's grammar format, into {@link Grammar} rules. One instance per text; not thread-safe.
 *
 * <pre>
 *   grammar     := (rule | comment | blank line)*
 *   rule        := name '::=' alternatives            (ends at a newline outside parentheses; a next line
 *                                                       starting with '|' continues it)
 *   alternatives:= sequence ('|' sequence)*
 *   sequence    := (primary postfix*)*
 *   primary     := "literal" | [class] | [^class] | '.' | '(' alternatives ')' | name
 *   postfix     := '*' | '+' | '?' | '{m}' | '{m,}' | '{m,n}' | '{,n}'
 *   name        := [a-zA-Z0-9_-]+
 * </pre>
 * Escapes in literals and classes: a backslash before one of {@code n r t \\ " ' [ ] - ^ /}, or before
 * {@code x}, {@code u} or {@code U} with 2, 4 or 8 hex digits (a code point, as llama.cpp).
 * Newlines inside parentheses and after {@code ::=} or {@code |} are whitespace. A
 * single pass, linear in the text; recursion depth is bounded by {@link #MAX_NESTING}.
 */
final class GbnfParser {

  /** Largest {@code m} or {@code n} of a counted repetition. */
  static final int MAX_REPEAT = 100_000;

  /** Deepest nesting of parentheses. */
  static final int MAX_NESTING = 256;

  private final SourceText source;
  private final String text;
  private int pos;
  private int depth;

  GbnfParser(String text) {
    this.source = new SourceText(text);
    this.text = text;
  }

  Grammar parse() {
    if (text.length() > Grammar.MAX_SOURCE_CHARS) {
      throw new GrammarException("grammar: longer than " + Grammar.MAX_SOURCE_CHARS + " chars (" + text.length() + ")");
    }
    List<Grammar.Rule> rules = new ArrayList<>();
    Map<String, Integer> definedAt = new HashMap<>();
    List<Expr.Ref> refs = new ArrayList<>();
    skipSpace(true);
    while (pos < text.length()) {
      int start = pos;
      String name = parseName();
      if (name.isEmpty()) throw error("expected a rule name", pos);
      if (definedAt.containsKey(name)) {
        int first = definedAt.get(name);
        throw error("rule '" + name + "' is defined twice (first at line " + source.line(first) + ")", start);
      }
      definedAt.put(name, start);
      skipSpace(false);
      if (!text.startsWith("::=", pos)) throw error("expected '::=' after rule name '" + name + "'", pos);
      pos += 3;
      skipSpace(true);
      Expr body = parseAlternatives(false, refs);
      if (pos < text.length() && text.charAt(pos) != '\n') throw error("unexpected '" + charAt(pos) + "'", pos);
      rules.add(new Grammar.Rule(name, body, source.line(start), source.column(start)));
      skipSpace(true);
    }
    if (!definedAt.containsKey(Grammar.ROOT)) throw new GrammarException("grammar: no rule named '" + Grammar.ROOT + "'");
    for (Expr.Ref ref : refs) {
      if (!definedAt.containsKey(ref.name())) {
        throw new GrammarException("undefined rule '" + ref.name() + "'", ref.line(), ref.column());
      }
    }
    Grammar grammar = new Grammar(rules);
    LeftRecursion.check(grammar);
    return grammar;
  }

  private Expr parseAlternatives(boolean nested, List<Expr.Ref> refs) {
    List<Expr> options = new ArrayList<>();
    options.add(parseSequence(nested, refs));
    while (true) {
      if (pos < text.length() && text.charAt(pos) == '|') {
        pos++;
        skipSpace(true);
        options.add(parseSequence(nested, refs));
        continue;
      }
      if (!nested && pos < text.length() && text.charAt(pos) == '\n') {
        // A following line that starts with '|' continues this rule (a superset of llama.cpp's format).
        int save = pos;
        skipSpace(true);
        if (pos < text.length() && text.charAt(pos) == '|') continue;
        pos = save;
      }
      break;
    }
    return options.size() == 1 ? options.get(0) : new Expr.Alt(List.copyOf(options));
  }

  private Expr parseSequence(boolean nested, List<Expr.Ref> refs) {
    List<Expr> items = new ArrayList<>();
    while (pos < text.length()) {
      char c = text.charAt(pos);
      Expr item;
      int start = pos;
      if (c == '"') {
        item = parseLiteral();
      } else if (c == '[') {
        item = parseClass();
      } else if (c == '.') {
        pos++;
        item = new Expr.CharSet(CharRanges.any());
      } else if (c == '(') {
        if (++depth > MAX_NESTING) throw error("parentheses nested deeper than " + MAX_NESTING, pos);
        pos++;
        skipSpace(true);
        item = parseAlternatives(true, refs);
        skipSpace(true);
        if (pos >= text.length() || text.charAt(pos) != ')') throw error("expected ')' to close the '(' at line "
            + source.line(start) + ", column " + source.column(start), pos);
        pos++;
        depth--;
      } else if (isNameChar(c)) {
        String name = parseName();
        item = new Expr.Ref(name, source.line(start), source.column(start));
        refs.add((Expr.Ref) item);
        skipSpace(nested);
        if (text.startsWith("::=", pos)) {
          throw error("expected a newline before the definition of rule '" + name + "'", start);
        }
      } else if (c == '|' || c == ')' || c == '\n') {
        break;
      } else {
        throw error("unexpected '" + charAt(pos) + "'", pos);
      }
      skipSpace(nested);
      item = parsePostfix(item, nested);
      items.add(item);
    }
    return items.size() == 1 ? items.get(0) : new Expr.Seq(List.copyOf(items));
  }

  private Expr parsePostfix(Expr item, boolean nested) {
    int numPostfix = 0;
    while (pos < text.length()) {
      char c = text.charAt(pos);
      int start = pos;
      if ((c == '*' || c == '+' || c == '?' || c == '{') && ++numPostfix > MAX_NESTING) {
        throw error("more than " + MAX_NESTING + " repetition operators on one item", pos);
      }
      if (c == '*') {
        pos++;
        item = new Expr.Repeat(item, 0, Expr.Repeat.UNBOUNDED);
      } else if (c == '+') {
        pos++;
        item = new Expr.Repeat(item, 1, Expr.Repeat.UNBOUNDED);
      } else if (c == '?') {
        pos++;
        item = new Expr.Repeat(item, 0, 1);
      } else if (c == '{') {
        pos++;
        skipSpace(false);
        int min = 0;
        int max;
        boolean hasMin = pos < text.length() && Character.isDigit(text.charAt(pos));
        if (hasMin) min = parseCount();
        skipSpace(false);
        if (pos < text.length() && text.charAt(pos) == ',') {
          pos++;
          skipSpace(false);
          if (pos < text.length() && Character.isDigit(text.charAt(pos))) {
            max = parseCount();
          } else {
            max = Expr.Repeat.UNBOUNDED;
          }
        } else {
          if (!hasMin) throw error("expected a count in '{...}'", pos);
          max = min;
        }
        skipSpace(false);
        if (pos >= text.length() || text.charAt(pos) != '}') throw error("expected '}'", pos);
        pos++;
        if (max != Expr.Repeat.UNBOUNDED && max < min) throw error("repetition {" + min + "," + max + "}: max below min", start);
        item = new Expr.Repeat(item, min, max);
      } else {
        break;
      }
      skipSpace(nested);
    }
    return item;
  }

  private int parseCount() {
    int start = pos;
    long value = 0;
    while (pos < text.length() && Character.isDigit(text.charAt(pos))) {
      value = value * 10 + (text.charAt(pos++) - '0');
      if (value > MAX_REPEAT) throw error("repetition count above " + MAX_REPEAT, start);
    }
    return (int) value;
  }

  private Expr parseLiteral() {
    int start = pos;
    pos++; // opening quote
    StringBuilder sb = new StringBuilder();
    while (true) {
      if (pos >= text.length() || text.charAt(pos) == '\n') throw error("unterminated string literal", start);
      char c = text.charAt(pos);
      if (c == '"') {
        pos++;
        break;
      }
      sb.appendCodePoint(parseChar());
    }
    return new Expr.Literal(sb.toString());
  }

  private Expr parseClass() {
    int start = pos;
    pos++; // '['
    boolean negated = pos < text.length() && text.charAt(pos) == '^';
    if (negated) pos++;
    CharRanges ranges = new CharRanges();
    while (true) {
      if (pos >= text.length() || text.charAt(pos) == '\n') throw error("unterminated character class", start);
      if (text.charAt(pos) == ']') {
        pos++;
        break;
      }
      int itemStart = pos;
      int lo = parseChar();
      int hi = lo;
      if (pos + 1 < text.length() && text.charAt(pos) == '-' && text.charAt(pos + 1) != ']' && text.charAt(pos + 1) != '\n') {
        pos++;
        hi = parseChar();
        if (hi < lo) throw error("character range out of order", itemStart);
      }
      ranges.add(lo, hi);
    }
    if (ranges.isEmpty()) throw error("empty character class", start);
    int[] set = negated ? ranges.buildNegated() : ranges.build();
    if (set.length == 0) throw error("character class matches nothing", start);
    return new Expr.CharSet(set);
  }

  /** One code point of a literal or class, escapes decoded. */
  private int parseChar() {
    int start = pos;
    int c = text.codePointAt(pos);
    if (Character.isSurrogate(text.charAt(pos)) && Character.charCount(c) == 1) throw error("lone surrogate", pos);
    pos += Character.charCount(c);
    if (c != '\\') return c;
    if (pos >= text.length()) throw error("escape at end of text", start);
    char e = text.charAt(pos++);
    return switch (e) {
      case 'n' -> '\n';
      case 'r' -> '\r';
      case 't' -> '\t';
      case '\\', '"', '\'', '[', ']', '-', '^', '/' -> e;
      case 'x' -> parseHex(2, start);
      case 'u' -> parseHex(4, start);
      case 'U' -> parseHex(8, start);
      default -> throw error("unknown escape '\\" + e + "'", start);
    };
  }

  private int parseHex(int digits, int start) {
    if (pos + digits > text.length()) throw error("escape needs " + digits + " hex digits", start);
    int value = 0;
    for (int i = 0; i < digits; i++) {
      int d = Character.digit(text.charAt(pos++), 16);
      if (d < 0) throw error("escape needs " + digits + " hex digits", start);
      value = value * 16 + d;
      if (value > CharRanges.MAX_CODE_POINT) throw error("escape beyond U+10FFFF", start);
    }
    if (value >= Character.MIN_SURROGATE && value <= Character.MAX_SURROGATE) throw error("escape of a surrogate code point", start);
    return value;
  }

  private String parseName() {
    int start = pos;
    while (pos < text.length() && isNameChar(text.charAt(pos))) pos++;
    return text.substring(start, pos);
  }

  private static boolean isNameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  }

  /** Skips spaces, tabs, carriage returns and comments; newlines too when {@code newlines}. */
  private void skipSpace(boolean newlines) {
    while (pos < text.length()) {
      char c = text.charAt(pos);
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        pos++;
      } else if (c == '#') {
        while (pos < text.length() && text.charAt(pos) != '\n') pos++;
      } else {
        break;
      }
    }
  }

  private String charAt(int offset) {
    return new String(Character.toChars(text.codePointAt(offset)));
  }

  private GrammarException error(String message, int offset) {
    return source.error(message, offset);
  }
}
