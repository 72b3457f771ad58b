package sphinxserve.structured;

import java.util.Arrays;

/**
 * Builds the code-point sets of {@link Expr.CharSet}: collects ranges, then normalises them (sorted, merged,
 * surrogates removed) and negates them over all of Unicode. Not thread-safe; one per class being parsed.
 */
final class CharRanges {
  /** Largest code point. */
  static final int MAX_CODE_POINT = Character.MAX_CODE_POINT;

  private int[] ranges = new int[8];
  private int size;

  /** Adds the inclusive range {@code [lo, hi]}; {@code lo <= hi}. */
  CharRanges add(int lo, int hi) {
    if (size + 2 > ranges.length) ranges = Arrays.copyOf(ranges, ranges.length * 2);
    ranges[size++] = lo;
    ranges[size++] = hi;
    return this;
  }

  /** Adds every range of a normalised set. */
  CharRanges addAll(int[] set) {
    for (int i = 0; i < set.length; i += 2) add(set[i], set[i + 1]);
    return this;
  }

  /** Whether nothing was added. */
  boolean isEmpty() {
    return size == 0;
  }

  /** The normalised set: sorted, merged, without surrogates. */
  int[] build() {
    long[] packed = new long[size / 2];
    for (int i = 0; i < size; i += 2) packed[i / 2] = ((long) ranges[i] << 32) | ranges[i + 1];
    Arrays.sort(packed);
    int[] out = new int[size + 4];
    int n = 0;
    for (long p : packed) {
      int lo = (int) (p >>> 32);
      int hi = (int) p;
      if (n > 0 && lo <= out[n - 1] + 1) {
        out[n - 1] = Math.max(out[n - 1], hi);
      } else {
        out[n++] = lo;
        out[n++] = hi;
      }
    }
    return withoutSurrogates(Arrays.copyOf(out, n));
  }

  /** The complement of the normalised set over U+0000..U+10FFFF, without surrogates. */
  int[] buildNegated() {
    return negate(build());
  }

  /** The complement of a normalised set over U+0000..U+10FFFF, without surrogates. */
  static int[] negate(int[] set) {
    int[] out = new int[set.length + 2];
    int n = 0;
    int next = 0;
    for (int i = 0; i < set.length; i += 2) {
      if (set[i] > next) {
        out[n++] = next;
        out[n++] = set[i] - 1;
      }
      next = set[i + 1] + 1;
    }
    if (next <= MAX_CODE_POINT) {
      out[n++] = next;
      out[n++] = MAX_CODE_POINT;
    }
    return withoutSurrogates(Arrays.copyOf(out, n));
  }

  /** Every code point (what GBNF's {@code .} matches). */
  static int[] any() {
    return withoutSurrogates(new int[] {0, MAX_CODE_POINT});
  }

  /** One code point. */
  static int[] of(int codePoint) {
    return new int[] {codePoint, codePoint};
  }

  private static int[] withoutSurrogates(int[] set) {
    int[] out = new int[set.length + 2];
    int n = 0;
    for (int i = 0; i < set.length; i += 2) {
      int lo = set[i];
      int hi = set[i + 1];
      if (hi < Character.MIN_SURROGATE || lo > Character.MAX_SURROGATE) {
        out[n++] = lo;
        out[n++] = hi;
        continue;
      }
      if (lo < Character.MIN_SURROGATE) {
        out[n++] = lo;
        out[n++] = Character.MIN_SURROGATE - 1;
      }
      if (hi > Character.MAX_SURROGATE) {
        out[n++] = Character.MAX_SURROGATE + 1;
        out[n++] = hi;
      }
    }
    return Arrays.copyOf(out, n);
  }
}
