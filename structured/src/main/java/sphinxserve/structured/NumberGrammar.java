package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * Grammars of JSON numbers: free ones, and ones within bounds a grammar can enforce.
 *
 * <p>Free numbers follow llama.cpp: an integral part of at most {@link DecimalRanges#MAX_DIGITS} digits, an
 * optional fraction of at most {@link DecimalRanges#MAX_FRACTION_DIGITS} digits and an optional exponent of at
 * most {@link #MAX_EXPONENT_DIGITS} digits (so every value is a finite double). Bounded integers use
 * {@link DecimalRanges}. A bounded non-integer number {@code x} is written without exponent as {@code -?I.F};
 * with integral bounds the comparison splits on the integral part {@code I}: strictly between the bounds any
 * fraction goes, on a bound the fraction must be zero (inclusive upper), non-zero (exclusive lower) or anything
 * (inclusive lower). Non-integral bounds are refused. The fraction is kept short enough
 * ({@code 15 - digits(largest bound)}) that the double a validator reads stays on the right side of a bound.
 */
final class NumberGrammar {
  /** Most exponent digits: {@code 1e99} at most, far from double overflow. */
  static final int MAX_EXPONENT_DIGITS = 2;

  /** Significant decimal digits a double always keeps apart from a nearby integer. */
  private static final int SAFE_SIGNIFICANT_DIGITS = 15;

  /** One bound of an interval. */
  record Bound(long value, boolean exclusive) {}

  private NumberGrammar() {}

  /** Any JSON integer of at most 16 digits. */
  static Fragment anyInteger() {
    return Fragment.seq(Fragment.literal("-").optional(), integralPart());
  }

  /** Any JSON number with the digit caps above. */
  static Fragment anyNumber() {
    Fragment fraction = Fragment.seq(Fragment.literal("."), digit().repeat(1, DecimalRanges.MAX_FRACTION_DIGITS)).optional();
    Fragment exponent = Fragment.seq(new Fragment("[eE]", 1), new Fragment("[-+]", 1).optional(),
        digit().repeat(1, MAX_EXPONENT_DIGITS)).optional();
    return Fragment.seq(Fragment.literal("-").optional(), integralPart(), fraction, exponent);
  }

  /**
   * Integers within {@code lower..upper} (either may be null), capped at 16 digits.
   *
   * @return empty when no integer lies within the bounds
   */
  static java.util.Optional<Fragment> integers(Bound lower, Bound upper) {
    long lo = lower == null ? -DecimalRanges.MAX_MAGNITUDE : lower.exclusive() ? lower.value() + 1 : lower.value();
    long hi = upper == null ? DecimalRanges.MAX_MAGNITUDE : upper.exclusive() ? upper.value() - 1 : upper.value();
    lo = Math.max(lo, -DecimalRanges.MAX_MAGNITUDE);
    hi = Math.min(hi, DecimalRanges.MAX_MAGNITUDE);
    return lo > hi ? java.util.Optional.empty() : java.util.Optional.of(DecimalRanges.integers(lo, hi));
  }

  /**
   * Numbers within integral bounds {@code lower..upper} (either may be null, not both), no exponent.
   *
   * @return empty when no number lies within the bounds
   */
  static java.util.Optional<Fragment> numbers(Bound lower, Bound upper) {
    long largest = Math.max(lower == null ? 0 : Math.abs(lower.value()), upper == null ? 0 : Math.abs(upper.value()));
    int fractionDigits = largest == 0 ? DecimalRanges.MAX_FRACTION_DIGITS
        : Math.max(1, SAFE_SIGNIFICANT_DIGITS - Long.toString(largest).length());
    List<Fragment> parts = new ArrayList<>();
    // x >= 0, written without a sign: x is the magnitude.
    boolean positive = upper == null || upper.value() > 0 || (upper.value() == 0 && !upper.exclusive());
    if (positive) {
      Bound from = lower == null || lower.value() < 0 ? new Bound(0, false) : lower;
      magnitudes(from, upper, fractionDigits).ifPresent(parts::add);
    }
    // x < 0, written "-M" with M > 0.
    boolean negative = lower == null || lower.value() < 0;
    if (negative) {
      Bound from = upper != null && upper.value() < 0 ? new Bound(-upper.value(), upper.exclusive()) : new Bound(0, true);
      Bound to = lower == null ? null : new Bound(-lower.value(), lower.exclusive());
      magnitudes(from, to, fractionDigits).ifPresent(m -> parts.add(Fragment.seq(Fragment.literal("-"), m)));
    }
    return parts.isEmpty() ? java.util.Optional.empty() : java.util.Optional.of(Fragment.alt(parts));
  }

  /** Unsigned decimals {@code I[.F]} with {@code from <= value <= to} per the bounds' exclusivity; to null = cap. */
  private static java.util.Optional<Fragment> magnitudes(Bound from, Bound to, int fractionDigits) {
    long a = from.value();
    long b = to == null ? DecimalRanges.MAX_MAGNITUDE : Math.min(to.value(), DecimalRanges.MAX_MAGNITUDE);
    boolean capped = to == null || to.value() > DecimalRanges.MAX_MAGNITUDE;
    if (a > b) {
      return java.util.Optional.empty();
    }
    Fraction atLow = from.exclusive() ? Fraction.NONZERO : Fraction.ANY;
    Fraction atHigh = capped ? Fraction.ANY : to.exclusive() ? Fraction.NONE : Fraction.ZERO;
    List<Fragment> parts = new ArrayList<>();
    if (a == b) {
      Fraction both = atLow.and(atHigh);
      if (both != Fraction.NONE) {
        parts.add(Fragment.seq(DecimalRanges.nonNegative(a, a), both.expr(fractionDigits)));
      }
    } else {
      // Integral parts with any fraction: the low one when inclusive, those strictly between, the high one when capped.
      long anyFrom = atLow == Fraction.ANY ? a : a + 1;
      long anyTo = atHigh == Fraction.ANY ? b : b - 1;
      if (atLow != Fraction.ANY) {
        parts.add(Fragment.seq(DecimalRanges.nonNegative(a, a), atLow.expr(fractionDigits)));
      }
      if (anyFrom <= anyTo) {
        parts.add(Fragment.seq(DecimalRanges.nonNegative(anyFrom, anyTo), Fraction.ANY.expr(fractionDigits)));
      }
      if (atHigh != Fraction.ANY && atHigh != Fraction.NONE) {
        parts.add(Fragment.seq(DecimalRanges.nonNegative(b, b), atHigh.expr(fractionDigits)));
      }
    }
    return parts.isEmpty() ? java.util.Optional.empty() : java.util.Optional.of(Fragment.alt(parts));
  }

  /** What the fraction after an integral part may be. */
  private enum Fraction {
    ANY, ZERO, NONZERO, NONE;

    Fraction and(Fraction other) {
      if (this == NONE || other == NONE) {
        return NONE;
      }
      if (this == ANY) {
        return other;
      }
      if (other == ANY || other == this) {
        return this;
      }
      return NONE; // ZERO and NONZERO
    }

    Fragment expr(int digits) {
      return switch (this) {
        case ANY -> Fragment.seq(Fragment.literal("."), digit().repeat(1, digits)).optional();
        case ZERO -> Fragment.seq(Fragment.literal("."), Fragment.literal("0").repeat(1, digits)).optional();
        case NONZERO -> Fragment.seq(Fragment.literal("."), digit().repeat(0, digits - 1), new Fragment("[1-9]", 1));
        case NONE -> throw new IllegalStateException("no fraction allowed");
      };
    }
  }

  private static Fragment integralPart() {
    return Fragment.alt(List.of(Fragment.literal("0"),
        Fragment.seq(new Fragment("[1-9]", 1), digit().repeat(0, DecimalRanges.MAX_DIGITS - 1))));
  }

  private static Fragment digit() {
    return new Fragment("[0-9]", 1);
  }
}
