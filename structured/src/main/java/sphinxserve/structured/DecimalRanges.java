package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * Grammars for the decimal numbers in an interval, by the digit-prefix technique of llama.cpp's
 * {@code json-schema-to-grammar} ({@code _generate_min_max_int}).
 *
 * <p>An interval of non-negative integers is split by digit count; an interval of same-length numbers
 * {@code lo..hi} is the shared leading digits followed by three parts: the low digit with its tail from
 * {@code lo}'s tail up to 9...9, the digits strictly between with any tail, the high digit with its tail from
 * 0...0 up to {@code hi}'s tail. Each part recurses on one digit fewer, so an interval costs O(digits²)
 * alternatives. Numbers are written canonically: no leading zeros, no {@code -0}.
 *
 * <p>Magnitudes are capped at {@link #MAX_DIGITS} digits (as llama.cpp caps integral parts at 16), which is what
 * keeps every number, and so every answer, of bounded length.
 */
final class DecimalRanges {
  /** Most digits of an integer or integral part. */
  static final int MAX_DIGITS = 16;

  /** Largest magnitude written: {@code 10^MAX_DIGITS - 1}. */
  static final long MAX_MAGNITUDE = 9_999_999_999_999_999L;

  /** Most digits after a decimal point. */
  static final int MAX_FRACTION_DIGITS = 16;

  private DecimalRanges() {}

  /** The integers {@code lo..hi} (inclusive, both within ±{@link #MAX_MAGNITUDE}, {@code lo <= hi}). */
  static Fragment integers(long lo, long hi) {
    if (lo > hi || lo < -MAX_MAGNITUDE || hi > MAX_MAGNITUDE) {
      throw new IllegalArgumentException("bad interval " + lo + ".." + hi);
    }
    List<Fragment> parts = new ArrayList<>();
    if (lo < 0) {
      parts.add(Fragment.seq(Fragment.literal("-"), nonNegative(Math.max(1, -hi), -lo)));
    }
    if (hi >= 0) {
      parts.add(nonNegative(Math.max(0, lo), hi));
    }
    return Fragment.alt(parts);
  }

  /** The non-negative integers {@code lo..hi}, canonical decimal. */
  static Fragment nonNegative(long lo, long hi) {
    List<Fragment> parts = new ArrayList<>();
    int loDigits = digits(lo);
    int hiDigits = digits(hi);
    for (int n = loDigits; n <= hiDigits; n++) {
      long from = Math.max(lo, n == 1 ? 0 : pow10(n - 1));
      long to = Math.min(hi, pow10(n) - 1);
      parts.add(sameLength(Long.toString(from), Long.toString(to)));
    }
    return Fragment.alt(parts);
  }

  /** Digit strings of equal length from {@code lo} to {@code hi} (leading zeros allowed in tails). */
  private static Fragment sameLength(String lo, String hi) {
    int n = lo.length();
    if (n == 0) {
      return Fragment.EMPTY;
    }
    if (lo.equals(hi)) {
      return Fragment.literal(lo);
    }
    char l = lo.charAt(0);
    char h = hi.charAt(0);
    String loTail = lo.substring(1);
    String hiTail = hi.substring(1);
    if (l == h) {
      return Fragment.seq(Fragment.literal(String.valueOf(l)), sameLength(loTail, hiTail));
    }
    boolean lowFull = loTail.chars().allMatch(c -> c == '0');
    boolean highFull = hiTail.chars().allMatch(c -> c == '9');
    List<Fragment> parts = new ArrayList<>();
    char midFrom = lowFull ? l : (char) (l + 1);
    char midTo = highFull ? h : (char) (h - 1);
    if (!lowFull) {
      parts.add(Fragment.seq(Fragment.literal(String.valueOf(l)), sameLength(loTail, "9".repeat(n - 1))));
    }
    if (midFrom <= midTo) {
      parts.add(Fragment.seq(digitClass(midFrom, midTo), anyDigits(n - 1)));
    }
    if (!highFull) {
      parts.add(Fragment.seq(Fragment.literal(String.valueOf(h)), sameLength("0".repeat(n - 1), hiTail)));
    }
    return Fragment.alt(parts);
  }

  /** Exactly {@code n} digits. */
  static Fragment anyDigits(int n) {
    return digitClass('0', '9').repeat(n, n);
  }

  private static Fragment digitClass(char from, char to) {
    return from == to ? Fragment.literal(String.valueOf(from)) : new Fragment("[" + from + "-" + to + "]", 1);
  }

  private static int digits(long v) {
    return Long.toString(v).length();
  }

  private static long pow10(int n) {
    long p = 1;
    for (int i = 0; i < n; i++) {
      p *= 10;
    }
    return p;
  }
}
