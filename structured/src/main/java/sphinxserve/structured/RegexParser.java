package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * Parses a regular expression (ECMAScript syntax, the subset JSON Schema's {@code pattern} and users need) into
 * the grammar IR. The whole output must match: {@code ^} and {@code $} are optional and allowed only at the very
 * start and end. Refused, naming the position: backreferences, lookaround, word boundaries, inline flags.
 * One instance per pattern; not thread-safe.
 */
final class RegexParser {

  /** ECMAScript's {@code \s}: white space and line terminators. */
  private static final int[] SPACE = new CharRanges().add('\t', '\r').add(' ', ' ').add(0xA0, 0xA0).add(0x1680, 0x1680)
      .add(0x2000, 0x200A).add(0x2028, 0x2029).add(0x202F, 0x202F).add(0x205F, 0x205F).add(0x3000, 0x3000)
      .add(0xFEFF, 0xFEFF).build();
  private static final int[] DIGIT = new CharRanges().add('0', '9').build();
  private static final int[] WORD = new CharRanges().add('0', '9').add('A', 'Z').add('_', '_').add('a', 'z').build();
  /** What {@code .} matches: anything but a line terminator (ECMAScript without the s flag). */
  private static final int[] DOT = CharRanges.negate(new CharRanges().add('\n', '\n').add('\r', '\r').add(0x2028, 0x2029).build());

  private final SourceText source;
  private final String text;
  private final int end;
  private int pos;
  private int depth;

  RegexParser(String pattern) {
    this.source = new SourceText(pattern);
    this.text = pattern;
    int e = pattern.length();
    if (e > 0 && pattern.charAt(e - 1) == '$' && !escaped(pattern, e - 1)) e--;
    this.end = e;
  }

  /** Whether the char at {@code i} is preceded by an odd number of backslashes. */
  private static boolean escaped(String s, int i) {
    int n = 0;
    while (i - 1 - n >= 0 && s.charAt(i - 1 - n) == '\\') n++;
    return n % 2 == 1;
  }

  Expr parse() {
    if (text.length() > Grammar.MAX_SOURCE_CHARS) {
      throw new GrammarException("regex: longer than " + Grammar.MAX_SOURCE_CHARS + " chars (" + text.length() + ")");
    }
    if (pos < end && text.charAt(pos) == '^') pos++;
    Expr e = parseAlternation();
    if (pos < end) {
      throw error(text.charAt(pos) == ')' ? "unmatched ')'" : "unexpected '" + text.charAt(pos) + "'", pos);
    }
    return e;
  }

  private Expr parseAlternation() {
    List<Expr> options = new ArrayList<>();
    options.add(parseConcat());
    while (pos < end && text.charAt(pos) == '|') {
      pos++;
      options.add(parseConcat());
    }
    return options.size() == 1 ? options.get(0) : new Expr.Alt(List.copyOf(options));
  }

  private Expr parseConcat() {
    List<Expr> items = new ArrayList<>();
    while (pos < end) {
      char c = text.charAt(pos);
      if (c == '|' || c == ')') break;
      int start = pos;
      Expr atom = parseAtom();
      items.add(parseQuantifiers(atom, start));
    }
    return items.size() == 1 ? items.get(0) : new Expr.Seq(List.copyOf(items));
  }

  private Expr parseQuantifiers(Expr atom, int atomStart) {
    int numQuantifiers = 0;
    while (pos < end) {
      char c = text.charAt(pos);
      int start = pos;
      int min;
      int max;
      if (c == '*') {
        pos++;
        min = 0;
        max = Expr.Repeat.UNBOUNDED;
      } else if (c == '+') {
        pos++;
        min = 1;
        max = Expr.Repeat.UNBOUNDED;
      } else if (c == '?') {
        pos++;
        min = 0;
        max = 1;
      } else if (c == '{' && isBraceQuantifier(pos)) {
        pos++;
        min = parseCount();
        max = min;
        if (text.charAt(pos) == ',') {
          pos++;
          max = text.charAt(pos) == '}' ? Expr.Repeat.UNBOUNDED : parseCount();
        }
        pos++; // '}'
        if (max != Expr.Repeat.UNBOUNDED && max < min) throw error("quantifier {" + min + "," + max + "}: max below min", start);
      } else {
        break;
      }
      if (numQuantifiers++ > 0) throw error("nothing to repeat (a quantifier after a quantifier)", start);
      if (pos < end && text.charAt(pos) == '?') pos++; // lazy: same language
      atom = new Expr.Repeat(atom, min, max);
    }
    return atom;
  }

  /** Whether {@code {} at {@code at} starts {@code {m}}, {@code {m,}} or {@code {m,n}}; otherwise it is a literal brace. */
  private boolean isBraceQuantifier(int at) {
    int i = at + 1;
    int digits = 0;
    while (i < end && Character.isDigit(text.charAt(i))) { i++; digits++; }
    if (digits == 0) return false;
    if (i < end && text.charAt(i) == ',') {
      i++;
      while (i < end && Character.isDigit(text.charAt(i))) i++;
    }
    return i < end && text.charAt(i) == '}';
  }

  private int parseCount() {
    int start = pos;
    long value = 0;
    while (Character.isDigit(text.charAt(pos))) {
      value = value * 10 + (text.charAt(pos++) - '0');
      if (value > GbnfParser.MAX_REPEAT) throw error("quantifier count above " + GbnfParser.MAX_REPEAT, start);
    }
    return (int) value;
  }

  private Expr parseAtom() {
    int start = pos;
    char c = text.charAt(pos);
    switch (c) {
      case '(' -> {
        return parseGroup();
      }
      case '[' -> {
        return parseClass();
      }
      case '.' -> {
        pos++;
        return new Expr.CharSet(DOT);
      }
      case '\\' -> {
        return parseEscapeAtom();
      }
      case '*', '+', '?' -> throw error("nothing to repeat", start);
      case '^' -> throw error("'^' is supported only at the start of the pattern", start);
      case '$' -> throw error("'$' is supported only at the end of the pattern", start);
      default -> {
        int cp = text.codePointAt(pos);
        if (Character.charCount(cp) == 1 && Character.isSurrogate(c)) throw error("lone surrogate", pos);
        pos += Character.charCount(cp);
        return new Expr.Literal(new String(Character.toChars(cp)));
      }
    }
  }

  private Expr parseGroup() {
    int start = pos;
    if (++depth > GbnfParser.MAX_NESTING) throw error("groups nested deeper than " + GbnfParser.MAX_NESTING, start);
    pos++;
    if (pos < end && text.charAt(pos) == '?') {
      if (text.startsWith("?:", pos)) {
        pos += 2;
      } else if (text.startsWith("?=", pos) || text.startsWith("?!", pos)) {
        throw error("lookahead is not supported", start);
      } else if (text.startsWith("?<=", pos) || text.startsWith("?<!", pos)) {
        throw error("lookbehind is not supported", start);
      } else if (text.startsWith("?<", pos) || text.startsWith("?P<", pos)) {
        int close = text.indexOf('>', pos);
        if (close < 0 || close >= end) throw error("unterminated group name", start);
        pos = close + 1;
      } else {
        throw error("unsupported group syntax '(?" + (pos + 1 < end ? text.charAt(pos + 1) : "") + "'", start);
      }
    }
    Expr inner = parseAlternation();
    if (pos >= end || text.charAt(pos) != ')') throw error("unclosed group", start);
    pos++;
    depth--;
    return inner;
  }

  private Expr parseEscapeAtom() {
    int start = pos;
    if (pos + 1 >= end) throw error("escape at end of pattern", start);
    char e = text.charAt(pos + 1);
    int[] set = classEscape(e);
    if (set != null) {
      pos += 2;
      return new Expr.CharSet(set);
    }
    if (e == 'b' || e == 'B') throw error("word boundaries (\\" + e + ") are not supported", start);
    if (e >= '1' && e <= '9') throw error("backreferences are not supported", start);
    if (e == 'k') throw error("backreferences are not supported", start);
    return new Expr.Literal(new String(Character.toChars(parseCharEscape(false))));
  }

  /** The set of {@code \d \D \w \W \s \S}, or null for another escape. */
  private static int[] classEscape(char e) {
    return switch (e) {
      case 'd' -> DIGIT;
      case 'D' -> CharRanges.negate(DIGIT);
      case 'w' -> WORD;
      case 'W' -> CharRanges.negate(WORD);
      case 's' -> SPACE;
      case 'S' -> CharRanges.negate(SPACE);
      default -> null;
    };
  }

  /** Decodes a single-character escape at {@code pos} (a backslash); {@code \b} is backspace inside a class. */
  private int parseCharEscape(boolean inClass) {
    int start = pos;
    pos++;
    char e = text.charAt(pos++);
    switch (e) {
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'f': return '\f';
      case 'v': return 0x0B;
      case '0':
        if (pos < end && Character.isDigit(text.charAt(pos))) throw error("octal escapes are not supported", start);
        return 0;
      case 'x': return hex(2, start);
      case 'u':
        if (pos < end && text.charAt(pos) == '{') {
          int close = text.indexOf('}', pos);
          if (close < 0 || close >= end || close == pos + 1 || close - pos - 1 > 6) throw error("bad \\u{...} escape", start);
          pos++;
          int v = hex(close - pos, start);
          pos = close + 1;
          return v;
        }
        return hex(4, start);
      case 'b':
        if (inClass) return '\b';
        throw error("word boundaries (\\b) are not supported", start);
      case 'c':
        throw error("control escapes (\\c) are not supported", start);
      default:
        if (Character.isLetterOrDigit(e)) throw error("unknown escape '\\" + e + "'", start);
        if (Character.isSurrogate(e)) throw error("escape of a lone surrogate", start);
        return e;
    }
  }

  private int hex(int digits, int start) {
    if (pos + digits > end) throw error("escape needs " + digits + " hex digits", start);
    int v = 0;
    for (int i = 0; i < digits; i++) {
      int d = Character.digit(text.charAt(pos++), 16);
      if (d < 0) throw error("escape needs " + digits + " hex digits", start);
      v = v * 16 + d;
    }
    if (v > CharRanges.MAX_CODE_POINT) throw error("escape beyond U+10FFFF", start);
    if (v >= Character.MIN_SURROGATE && v <= Character.MAX_SURROGATE) throw error("escape of a surrogate code point", start);
    return v;
  }

  private Expr parseClass() {
    int start = pos;
    pos++;
    boolean negated = pos < end && text.charAt(pos) == '^';
    if (negated) pos++;
    CharRanges ranges = new CharRanges();
    boolean first = true;
    while (true) {
      if (pos >= end) throw error("unterminated character class", start);
      char c = text.charAt(pos);
      if (c == ']' && !first) {
        pos++;
        break;
      }
      if (c == ']') { // "[]" matches nothing, "[^]" anything in ECMAScript; both are almost always mistakes
        throw error("empty character class", start);
      }
      first = false;
      int itemStart = pos;
      if (c == '\\' && pos + 1 < end && classEscape(text.charAt(pos + 1)) != null) {
        ranges.addAll(classEscape(text.charAt(pos + 1)));
        pos += 2;
        continue;
      }
      int lo = classChar();
      if (pos + 1 < end && text.charAt(pos) == '-' && text.charAt(pos + 1) != ']') {
        pos++;
        if (text.charAt(pos) == '\\' && pos + 1 < end && classEscape(text.charAt(pos + 1)) != null) {
          throw error("a class escape cannot end a range", itemStart);
        }
        int hi = classChar();
        if (hi < lo) throw error("character range out of order", itemStart);
        ranges.add(lo, hi);
      } else {
        ranges.add(lo, lo);
      }
    }
    int[] set = negated ? ranges.buildNegated() : ranges.build();
    if (set.length == 0) throw error("character class matches nothing", start);
    return new Expr.CharSet(set);
  }

  private int classChar() {
    if (text.charAt(pos) == '\\') {
      if (pos + 1 >= end) throw error("escape at end of pattern", pos);
      return parseCharEscape(true);
    }
    int cp = text.codePointAt(pos);
    if (Character.charCount(cp) == 1 && Character.isSurrogate(text.charAt(pos))) throw error("lone surrogate", pos);
    pos += Character.charCount(cp);
    return cp;
  }

  private GrammarException error(String message, int offset) {
    return new GrammarException("regex: " + message + " at position " + offset, source.line(offset), source.column(offset), true);
  }
}
