package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * Grammars of the inside of JSON strings (the text between the quotes): any character, and the formats the
 * JSON Schema converter supports.
 *
 * <p>One grammar symbol is one code point of the decoded string, so {@code minLength}/{@code maxLength} (which
 * count code points) become repetition bounds: a character is written raw (any code point but {@code "},
 * {@code \} and controls) or as one escape. {@code \}{@code u} escapes of surrogates are not produced: a pair of
 * them would be two symbols for one code point and a lone one is not text; characters above U+FFFF are written
 * raw. Formats are written conservatively: every string produced is valid under RFC 3339 / RFC 4122 / RFC 5321 as
 * the validators read them, though not every valid string can be produced (years 1000-2999, offsets up to
 * ±17:59, e-mail domains under a few common top-level domains, host names of lowercase labels starting with a
 * letter, URIs of the form {@code https://host/seg/seg} only).
 */
final class StringGrammar {
  /** Formats {@link #format} supports. */
  static final List<String> FORMATS = List.of("date", "time", "date-time", "uuid", "email", "ipv4", "hostname", "uri");

  /** Most UTF-8 bytes one character can take as written: a {@code \}{@code uXXXX} escape. */
  static final int MAX_CHAR_BYTES = 6;

  /** Top-level domains e-mail addresses may end in: common ones every TLD list knows. */
  private static final List<String> EMAIL_TLDS = List.of("com", "org", "net", "io", "dev", "edu", "gov", "info", "app");

  private StringGrammar() {}

  /** One character of a JSON string as written: raw, a short escape or a non-surrogate {@code \}{@code u} escape. */
  static Fragment anyChar() {
    Fragment raw = new Fragment("[^\\x22\\x5C\\x00-\\x1F]", 4);
    Fragment shortEscape = new Fragment("\"\\\\\" [\\x22\\x5C/bfnrt]", 2);
    Fragment hex = new Fragment("[0-9a-fA-F]", 1);
    Fragment unicode = Fragment.seq(Fragment.literal("\\u"), Fragment.alt(List.of(
        Fragment.seq(new Fragment("[0-9a-cA-Ce-fE-F]", 1), hex.repeat(3, 3)),
        Fragment.seq(new Fragment("[dD]", 1), new Fragment("[0-7]", 1), hex.repeat(2, 2)))));
    return Fragment.alt(List.of(raw, shortEscape, unicode));
  }

  /** The inside of a string of the given format, or null when the format is not supported. */
  static Fragment format(String name, RuleSet rules) {
    return switch (name) {
      case "date" -> rules.shared("format-date", StringGrammar::date);
      case "time" -> rules.shared("format-time", StringGrammar::time);
      case "date-time" -> rules.shared("format-date-time",
          () -> Fragment.seq(rules.shared("format-date", StringGrammar::date), Fragment.literal("T"),
              rules.shared("format-time", StringGrammar::time)));
      case "uuid" -> rules.shared("format-uuid", StringGrammar::uuid);
      case "email" -> rules.shared("format-email", StringGrammar::email);
      case "ipv4" -> rules.shared("format-ipv4", StringGrammar::ipv4);
      case "hostname" -> rules.shared("format-hostname", StringGrammar::hostname);
      case "uri" -> rules.shared("format-uri",
          () -> Fragment.seq(Fragment.literal("https://"), rules.shared("format-hostname", StringGrammar::hostname),
              Fragment.seq(Fragment.literal("/"), new Fragment("[a-zA-Z0-9._~-]", 1).repeat(1, 20)).repeat(0, 4)));
      default -> null;
    };
  }

  private static Fragment date() {
    Fragment year = Fragment.seq(new Fragment("[12]", 1), DecimalRanges.anyDigits(3));
    Fragment leapTail = alt("\"0\" [48]", "[2468] [048]", "[13579] [26]");
    Fragment leapYear = Fragment.alt(List.of(
        Fragment.seq(new Fragment("[12]", 1), DecimalRanges.anyDigits(1), leapTail),
        new Fragment("(\"1\" [26] \"00\" | \"2\" [048] \"00\")", 4)));
    Fragment day31 = alt("\"0\" [1-9]", "[12] [0-9]", "\"3\" [01]");
    Fragment day30 = alt("\"0\" [1-9]", "[12] [0-9]", "\"30\"");
    Fragment day28 = alt("\"0\" [1-9]", "\"1\" [0-9]", "\"2\" [0-8]");
    Fragment monthDay = Fragment.alt(List.of(
        Fragment.seq(alt("\"01\"", "\"03\"", "\"05\"", "\"07\"", "\"08\"", "\"10\"", "\"12\""), Fragment.literal("-"), day31),
        Fragment.seq(alt("\"04\"", "\"06\"", "\"09\"", "\"11\""), Fragment.literal("-"), day30),
        Fragment.seq(Fragment.literal("02-"), day28)));
    return Fragment.alt(List.of(
        Fragment.seq(year, Fragment.literal("-"), monthDay),
        Fragment.seq(leapYear, Fragment.literal("-02-29"))));
  }

  private static Fragment time() {
    Fragment hour = alt("[01] [0-9]", "\"2\" [0-3]");
    Fragment sixty = new Fragment("[0-5] [0-9]", 2);
    Fragment fraction = Fragment.seq(Fragment.literal("."), DecimalRanges.anyDigits(1).repeat(1, 6)).optional();
    Fragment offset = Fragment.alt(List.of(Fragment.literal("Z"),
        Fragment.seq(new Fragment("[+-]", 1), alt("\"0\" [0-9]", "\"1\" [0-7]"), Fragment.literal(":"), sixty)));
    return Fragment.seq(hour, Fragment.literal(":"), sixty, Fragment.literal(":"), sixty, fraction, offset);
  }

  private static Fragment uuid() {
    Fragment hex = new Fragment("[0-9a-f]", 1);
    Fragment dash = Fragment.literal("-");
    return Fragment.seq(hex.repeat(8, 8), dash, hex.repeat(4, 4), dash, hex.repeat(4, 4), dash, hex.repeat(4, 4), dash,
        hex.repeat(12, 12));
  }

  private static Fragment email() {
    // Four atoms of at most 15 characters: a local part of at most 63, under RFC 5321's 64.
    Fragment atom = new Fragment("[a-zA-Z0-9_+-]", 1).repeat(1, 15);
    Fragment local = Fragment.seq(atom, Fragment.seq(Fragment.literal("."), atom).repeat(0, 3));
    Fragment alnum = new Fragment("[a-z0-9]", 1);
    Fragment label = Fragment.seq(alnum, Fragment.seq(new Fragment("[a-z0-9-]", 1).repeat(0, 14), alnum).optional());
    List<Fragment> tlds = new ArrayList<>();
    for (String tld : EMAIL_TLDS) {
      tlds.add(Fragment.literal(tld));
    }
    Fragment domain = Fragment.seq(label, Fragment.seq(Fragment.literal("."), label).repeat(0, 2), Fragment.literal("."), Fragment.alt(tlds));
    return Fragment.seq(local, Fragment.literal("@"), domain);
  }

  /** Dotted quad, each part 0-255 without leading zeros. */
  private static Fragment ipv4() {
    Fragment octet = DecimalRanges.nonNegative(0, 255);
    Fragment dot = Fragment.literal(".");
    return Fragment.seq(octet, dot, octet, dot, octet, dot, octet);
  }

  /** RFC 1123 host names, conservatively: up to four lowercase labels of up to 22 characters, each starting with a letter. */
  private static Fragment hostname() {
    Fragment label = Fragment.seq(new Fragment("[a-z]", 1),
        Fragment.seq(new Fragment("[a-z0-9-]", 1).repeat(0, 20), new Fragment("[a-z0-9]", 1)).optional());
    return Fragment.seq(label, Fragment.seq(Fragment.literal("."), label).repeat(0, 3));
  }

  /** Alternatives of fixed-length GBNF snippets, each as long as its quoted/class characters. */
  private static Fragment alt(String... snippets) {
    List<Fragment> parts = new ArrayList<>();
    for (String s : snippets) {
      parts.add(new Fragment(s, snippetBytes(s)));
    }
    return Fragment.alt(parts);
  }

  /** Bytes matched by a snippet of ASCII literals and single-character classes. */
  private static long snippetBytes(String snippet) {
    long n = 0;
    boolean inLiteral = false;
    boolean inClass = false;
    for (char c : snippet.toCharArray()) {
      if (inClass) {
        if (c == ']') {
          inClass = false;
          n++;
        }
      } else if (c == '"') {
        inLiteral = !inLiteral;
      } else if (inLiteral) {
        n++;
      } else if (c == '[') {
        inClass = true;
      }
    }
    return n;
  }
}
