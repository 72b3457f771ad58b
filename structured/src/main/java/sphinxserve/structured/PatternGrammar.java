package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * Translates a JSON Schema {@code pattern} (an ECMA-262 regular expression) into a grammar of the inside of a
 * JSON string whose decoded value the pattern matches.
 *
 * <p>Supported: literals and escapes ({@code \d \w \s \D \W \S}, {@code \t \n \r \f \v \0}, {@code \xHH},
 * {@code \}{@code uHHHH}, escaped punctuation), classes with ranges and negation, {@code .}, groups
 * ({@code (...)}, {@code (?:...)}, {@code (?<name>...)}), alternation and the quantifiers {@code * + ? {m} {m,}
 * {m,n}} (lazy forms match the same strings). Refused, naming the pattern's path: back-references, lookaround,
 * word boundaries, Unicode property escapes, {@code ^}/{@code $} anywhere but at the very start/end.
 *
 * <p>A JSON Schema pattern is not anchored: without a leading {@code ^} any text may come before the match, and
 * without a trailing {@code $} any text after. {@code ^a|b$} is read as {@code ^(a|b)$}, a subset of what it
 * matches, so every string produced still matches. Each code point of the pattern's classes is written as JSON
 * wants it: raw, or escaped when it is {@code "}, {@code \} or a control character (one spelling each).
 * {@code \s} is the ASCII whitespace both Java's and ECMA's engines agree on; {@code \S}, {@code \W}, {@code \D}
 * and {@code .} exclude ECMA's wider sets, so validators of either flavour accept the output.
 */
final class PatternGrammar {
  /** Largest {@code {m,n}} bound accepted: larger ones would blow the grammar up. */
  static final int MAX_REPEAT = 1000;

  /** ASCII whitespace: what {@code \s} produces. */
  private static final CodePointSet SPACE = CodePointSet.chars(" \t\n\u000B\f\r");
  /** ECMA's {@code \s}: excluded by {@code \S}. */
  private static final CodePointSet ECMA_SPACE = SPACE.union(CodePointSet.chars("\u00A0\u1680\u2028\u2029\u202F\u205F\u3000\uFEFF"))
      .union(CodePointSet.range(0x2000, 0x200A));
  private static final CodePointSet DIGIT = CodePointSet.range('0', '9');
  private static final CodePointSet WORD = DIGIT.union(CodePointSet.range('a', 'z')).union(CodePointSet.range('A', 'Z'))
      .union(CodePointSet.of('_'));
  /** What {@code .} does not match: ECMA's line terminators, and U+0085 which Java's {@code .} also excludes. */
  private static final CodePointSet LINE_TERMINATORS = CodePointSet.chars("\n\r\u0085\u2028\u2029");
  /** Code points a JSON string cannot hold raw. */
  private static final CodePointSet MUST_ESCAPE = CodePointSet.range(0, 0x1F).union(CodePointSet.chars("\"\\"));

  private final String pattern;
  private final String path;
  private int pos;

  private PatternGrammar(String pattern, String path) {
    this.pattern = pattern;
    this.path = path;
  }

  /**
   * The inside of a JSON string whose value matches {@code pattern}.
   *
   * @param path JSON pointer of the {@code pattern} keyword, for errors
   * @throws SchemaException when the pattern is malformed or uses an unsupported feature
   */
  static Fragment translate(String pattern, String path) {
    return new PatternGrammar(pattern, path).whole();
  }

  /** One character of a JSON string that decodes to a member of {@code set}. */
  static Fragment jsonChar(CodePointSet set) {
    List<Fragment> parts = new ArrayList<>();
    CodePointSet raw = set.minus(MUST_ESCAPE);
    if (!raw.isEmpty()) {
      parts.add(new Fragment(Gbnf.charClass(raw), Gbnf.utf8Length(raw.last())));
    }
    if (set.contains('"')) {
      parts.add(Fragment.literal("\\\""));
    }
    if (set.contains('\\')) {
      parts.add(Fragment.literal("\\\\"));
    }
    for (int c = 0; c < 0x20; c++) {
      if (set.contains(c)) {
        parts.add(Fragment.literal(switch (c) {
          case '\n' -> "\\n";
          case '\t' -> "\\t";
          case '\r' -> "\\r";
          case '\b' -> "\\b";
          case '\f' -> "\\f";
          default -> String.format(java.util.Locale.ROOT, "\\u%04x", c);
        }));
      }
    }
    if (parts.isEmpty()) {
      throw new IllegalArgumentException("empty set");
    }
    return Fragment.alt(parts);
  }

  private Fragment whole() {
    boolean anchoredStart = pattern.startsWith("^");
    boolean anchoredEnd = pattern.endsWith("$") && pattern.length() > (anchoredStart ? 1 : 0)
        && backslashesBefore(pattern.length() - 1) % 2 == 0;
    int end = anchoredEnd ? pattern.length() - 1 : pattern.length();
    pos = anchoredStart ? 1 : 0;
    Fragment body = alternation(end);
    if (pos != end) {
      throw error("unbalanced ')' at offset " + pos);
    }
    Fragment any = jsonChar(CodePointSet.ALL).repeat(0, Fragment.UNBOUNDED);
    List<Fragment> parts = new ArrayList<>();
    if (!anchoredStart) {
      parts.add(any);
    }
    parts.add(body.equals(Fragment.EMPTY) ? Fragment.EMPTY : new Fragment("(" + body.text() + ")", body.maxBytes()));
    if (!anchoredEnd) {
      parts.add(any);
    }
    return Fragment.seq(parts);
  }

  /** How many backslashes directly precede offset {@code at}: an odd count escapes the character there. */
  private int backslashesBefore(int at) {
    int n = 0;
    while (at - n - 1 >= 0 && pattern.charAt(at - n - 1) == '\\') {
      n++;
    }
    return n;
  }

  private Fragment alternation(int end) {
    List<Fragment> branches = new ArrayList<>();
    branches.add(sequence(end));
    while (pos < end && pattern.charAt(pos) == '|') {
      pos++;
      branches.add(sequence(end));
    }
    return Fragment.alt(branches);
  }

  private Fragment sequence(int end) {
    List<Fragment> items = new ArrayList<>();
    while (pos < end && pattern.charAt(pos) != '|' && pattern.charAt(pos) != ')') {
      Fragment atom = atom(end);
      items.add(quantified(atom, end));
    }
    return Fragment.seq(items);
  }

  private Fragment quantified(Fragment atom, int end) {
    if (pos >= end) {
      return atom;
    }
    char c = pattern.charAt(pos);
    long min;
    long max;
    if (c == '*') {
      min = 0;
      max = Fragment.UNBOUNDED;
      pos++;
    } else if (c == '+') {
      min = 1;
      max = Fragment.UNBOUNDED;
      pos++;
    } else if (c == '?') {
      min = 0;
      max = 1;
      pos++;
    } else if (c == '{' && isBraceQuantifier(pos)) {
      int close = pattern.indexOf('}', pos);
      String inside = pattern.substring(pos + 1, close);
      int comma = inside.indexOf(',');
      min = parseCount(comma < 0 ? inside : inside.substring(0, comma));
      max = comma < 0 ? min : comma == inside.length() - 1 ? Fragment.UNBOUNDED : parseCount(inside.substring(comma + 1));
      if (max != Fragment.UNBOUNDED && max < min) {
        throw error("quantifier {" + inside + "} has max < min");
      }
      pos = close + 1;
    } else {
      return atom;
    }
    if (pos < end && pattern.charAt(pos) == '?') {
      pos++; // lazy: same strings
    }
    if (pos < end && "*+?".indexOf(pattern.charAt(pos)) >= 0) {
      throw error("nothing to repeat at offset " + pos);
    }
    if (atom.equals(Fragment.EMPTY)) {
      return Fragment.EMPTY;
    }
    return atom.repeat(min, max);
  }

  private boolean isBraceQuantifier(int at) {
    int close = pattern.indexOf('}', at);
    return close > at + 1 && pattern.substring(at + 1, close).matches("\\d+(,\\d*)?");
  }

  private long parseCount(String digits) {
    long n;
    try {
      n = Long.parseLong(digits);
    } catch (NumberFormatException e) {
      throw error("repetition count too large: " + digits);
    }
    if (n > MAX_REPEAT) {
      throw error("repetition count " + n + " exceeds " + MAX_REPEAT);
    }
    return n;
  }

  private Fragment atom(int end) {
    char c = pattern.charAt(pos);
    switch (c) {
      case '(' -> {
        pos++;
        if (pattern.startsWith("?:", pos)) {
          pos += 2;
        } else if (pattern.startsWith("?<", pos) && !pattern.startsWith("?<=", pos) && !pattern.startsWith("?<!", pos)) {
          int close = pattern.indexOf('>', pos);
          if (close < 0) {
            throw error("unterminated group name at offset " + pos);
          }
          pos = close + 1;
        } else if (pattern.startsWith("?", pos)) {
          throw error("lookaround and other (?...) groups are not supported (offset " + (pos - 1) + ")");
        }
        Fragment inner = alternation(end);
        if (pos >= end || pattern.charAt(pos) != ')') {
          throw error("unclosed '(' ");
        }
        pos++;
        return inner.equals(Fragment.EMPTY) ? Fragment.EMPTY : new Fragment("(" + inner.text() + ")", inner.maxBytes());
      }
      case '[' -> {
        return jsonChar(charClass(end));
      }
      case '.' -> {
        pos++;
        return jsonChar(LINE_TERMINATORS.complement());
      }
      case '\\' -> {
        pos++;
        return jsonChar(escape(end, false, false));
      }
      case '^', '$' -> throw error("anchor '" + c + "' is only supported at the start/end of the pattern (offset " + pos + ")");
      case '*', '+', '?' -> throw error("nothing to repeat at offset " + pos);
      default -> {
        if (c == '{' && isBraceQuantifier(pos)) {
          throw error("nothing to repeat at offset " + pos);
        }
        int cp = pattern.codePointAt(pos);
        pos += Character.charCount(cp);
        return jsonChar(CodePointSet.of(cp));
      }
    }
  }

  private CodePointSet charClass(int end) {
    pos++; // '['
    boolean negated = pos < end && pattern.charAt(pos) == '^';
    if (negated) {
      pos++;
    }
    CodePointSet set = CodePointSet.NONE;
    boolean first = true;
    while (true) {
      if (pos >= end) {
        throw error("unclosed '['");
      }
      char c = pattern.charAt(pos);
      if (c == ']' && !first) {
        pos++;
        break;
      }
      if (c == ']') {
        // ECMA: "[]" matches nothing, "[^]" anything.
        pos++;
        return negated ? CodePointSet.ALL : emptyClass();
      }
      first = false;
      CodePointSet low = classAtom(end, negated);
      if (pos + 1 < end && pattern.charAt(pos) == '-' && pattern.charAt(pos + 1) != ']') {
        pos++;
        CodePointSet high = classAtom(end, negated);
        if (!isSingle(low) || !isSingle(high)) {
          throw error("class range with a class escape at offset " + pos);
        }
        if (high.ranges()[0] < low.ranges()[0]) {
          throw error("class range out of order at offset " + pos);
        }
        set = set.union(CodePointSet.range(low.ranges()[0], high.ranges()[0]));
      } else {
        set = set.union(low);
      }
    }
    if (negated) {
      set = set.complement();
    }
    if (set.isEmpty()) {
      return emptyClass();
    }
    return set;
  }

  private CodePointSet emptyClass() {
    throw error("character class matches nothing");
  }

  private static boolean isSingle(CodePointSet set) {
    return set.ranges().length == 2 && set.ranges()[0] == set.ranges()[1];
  }

  private CodePointSet classAtom(int end, boolean negated) {
    char c = pattern.charAt(pos);
    if (c == '\\') {
      pos++;
      return escape(end, true, negated);
    }
    int cp = pattern.codePointAt(pos);
    pos += Character.charCount(cp);
    return CodePointSet.of(cp);
  }

  /**
   * The set an escape stands for. Inside a negated class, {@code \\s} takes ECMA's wider set and {@code \\S} the
   * complement of the ASCII one, so that after negation the result is still inside both engines' readings.
   */
  private CodePointSet escape(int end, boolean inClass, boolean negatedClass) {
    if (pos >= pattern.length()) {
      throw error("pattern ends with a lone backslash");
    }
    char c = pattern.charAt(pos++);
    switch (c) {
      case 'd' -> {
        return DIGIT;
      }
      case 'D' -> {
        return DIGIT.complement();
      }
      case 'w' -> {
        return WORD;
      }
      case 'W' -> {
        return WORD.complement();
      }
      case 's' -> {
        return negatedClass ? ECMA_SPACE : SPACE;
      }
      case 'S' -> {
        return negatedClass ? SPACE.complement() : ECMA_SPACE.complement();
      }
      case 't' -> {
        return CodePointSet.of('\t');
      }
      case 'n' -> {
        return CodePointSet.of('\n');
      }
      case 'r' -> {
        return CodePointSet.of('\r');
      }
      case 'f' -> {
        return CodePointSet.of('\f');
      }
      case 'v' -> {
        return CodePointSet.of(0x0B);
      }
      case '0' -> {
        if (pos < end && Character.isDigit(pattern.charAt(pos))) {
          throw error("octal escapes are not supported (offset " + (pos - 2) + ")");
        }
        return CodePointSet.of(0);
      }
      case 'x' -> {
        return CodePointSet.of(hex(2));
      }
      case 'u' -> {
        if (pos < end && pattern.charAt(pos) == '{') {
          throw error("\\u{...} escapes are not supported (offset " + (pos - 2) + ")");
        }
        return CodePointSet.of(hex(4));
      }
      case 'b' -> {
        if (inClass) {
          return CodePointSet.of('\b');
        }
        throw error("word boundaries (\\b) are not supported (offset " + (pos - 2) + ")");
      }
      default -> {
        if (Character.isLetterOrDigit(c)) {
          throw error("escape \\" + c + " is not supported (offset " + (pos - 2) + ")");
        }
        return CodePointSet.of(c);
      }
    }
  }

  private int hex(int digits) {
    if (pos + digits > pattern.length()) {
      throw error("truncated hex escape at offset " + pos);
    }
    String h = pattern.substring(pos, pos + digits);
    if (!h.matches("[0-9a-fA-F]+")) {
      throw error("bad hex escape '" + h + "' at offset " + pos);
    }
    pos += digits;
    int cp = Integer.parseInt(h, 16);
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      throw error("surrogate escapes are not supported (offset " + (pos - digits - 2) + ")");
    }
    return cp;
  }

  private SchemaException error(String reason) {
    return new SchemaException(path, "pattern " + quote(pattern) + ": " + reason);
  }

  private static String quote(String s) {
    return "'" + (s.length() > 80 ? s.substring(0, 80) + "…" : s) + "'";
  }
}
