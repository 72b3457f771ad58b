package sphinxserve.structured;

import java.nio.charset.StandardCharsets;
import java.util.Locale;

/** Writing GBNF (llama.cpp dialect) text: literals, character classes, rule names. */
final class Gbnf {
  private Gbnf() {}

  /** {@code value} as a double-quoted GBNF literal; control characters escaped, everything else verbatim. */
  static String literal(String value) {
    StringBuilder out = new StringBuilder(value.length() + 2).append('"');
    value.codePoints().forEach(cp -> {
      switch (cp) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\t' -> out.append("\\t");
        case '\r' -> out.append("\\r");
        default -> {
          if (cp < 0x20 || cp == 0x7F) {
            out.append(String.format(Locale.ROOT, "\\x%02X", cp));
          } else {
            out.appendCodePoint(cp);
          }
        }
      }
    });
    return out.append('"').toString();
  }

  /**
   * {@code set} as a GBNF class: {@code [...]}, or {@code [^...]} of the complement when the set reaches the
   * last code point (GBNF has no escape for code points above U+FFFF).
   */
  static String charClass(CodePointSet set) {
    if (set.isEmpty()) {
      throw new IllegalArgumentException("empty class");
    }
    boolean negate = set.last() == CodePointSet.MAX;
    CodePointSet body = negate ? set.complement() : set;
    if (body.isEmpty()) {
      return "[^\\x00]"; // never wanted by the translators (they always exclude '"'); kept total for safety
    }
    StringBuilder out = new StringBuilder(negate ? "[^" : "[");
    int[] r = body.ranges();
    for (int i = 0; i < r.length; i += 2) {
      appendClassChar(out, r[i]);
      if (r[i + 1] > r[i]) {
        if (r[i + 1] > r[i] + 1) {
          out.append('-');
        }
        appendClassChar(out, r[i + 1]);
      }
    }
    return out.append(']').toString();
  }

  private static void appendClassChar(StringBuilder out, int cp) {
    if (cp < 0x20 || cp == 0x7F || "[]\\-^\"".indexOf(cp) >= 0) {
      out.append(String.format(Locale.ROOT, "\\x%02X", cp));
    } else if (cp >= 0x80 && cp <= 0xFFFF) {
      out.append(String.format(Locale.ROOT, "\\u%04X", cp));
    } else {
      out.appendCodePoint(cp);
    }
  }

  /** Bytes of {@code value} in UTF-8. */
  static long utf8Length(String value) {
    return value.getBytes(StandardCharsets.UTF_8).length;
  }

  /** Bytes of one code point in UTF-8. */
  static int utf8Length(int codePoint) {
    return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
  }

  /** A GBNF rule name ({@code [a-z0-9-]+}) derived from {@code hint}. */
  static String ruleName(String hint) {
    StringBuilder out = new StringBuilder();
    for (char c : hint.toLowerCase(Locale.ROOT).toCharArray()) {
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        out.append(c);
      } else if (!out.isEmpty() && out.charAt(out.length() - 1) != '-') {
        out.append('-');
      }
    }
    while (!out.isEmpty() && out.charAt(out.length() - 1) == '-') {
      out.setLength(out.length() - 1);
    }
    if (out.length() > 40) {
      out.setLength(40);
    }
    return out.isEmpty() ? "r" : out.toString();
  }
}
