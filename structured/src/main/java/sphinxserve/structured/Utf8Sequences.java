package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns a set of code points into the UTF-8 byte sequences that encode exactly them: a list of sequences of
 * byte ranges, each sequence 1 to 4 ranges long (the algorithm of Rust's {@code utf8-ranges} / RE2: split a
 * range at encoding-length boundaries, then until every continuation byte spans a full or aligned range).
 * Surrogates must not be in the set.
 */
final class Utf8Sequences {
  private Utf8Sequences() {}

  /**
   * The sequences for a normalised set, each as {@code [lo0, hi0, lo1, hi1, ...]} byte ranges (0..255).
   */
  static List<int[]> of(int[] set) {
    List<int[]> out = new ArrayList<>();
    for (int i = 0; i < set.length; i += 2) split(set[i], set[i + 1], out);
    return out;
  }

  private static final int[] LENGTH_LIMITS = {0x7F, 0x7FF, 0xFFFF};

  private static void split(int lo, int hi, List<int[]> out) {
    if (lo > hi) return;
    for (int max : LENGTH_LIMITS) {
      if (lo <= max && hi > max) {
        split(lo, max, out);
        split(max + 1, hi, out);
        return;
      }
    }
    if (hi < 0x80) {
      out.add(new int[] {lo, hi});
      return;
    }
    for (int i = 1; i < 4; i++) {
      int m = (1 << (6 * i)) - 1;
      if ((lo & ~m) != (hi & ~m)) {
        if ((lo & m) != 0) {
          split(lo, lo | m, out);
          split((lo | m) + 1, hi, out);
          return;
        }
        if ((hi & m) != m) {
          split(lo, (hi & ~m) - 1, out);
          split(hi & ~m, hi, out);
          return;
        }
      }
    }
    byte[] a = new String(Character.toChars(lo)).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    byte[] b = new String(Character.toChars(hi)).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    int[] seq = new int[a.length * 2];
    for (int k = 0; k < a.length; k++) {
      seq[2 * k] = a[k] & 0xFF;
      seq[2 * k + 1] = b[k] & 0xFF;
    }
    out.add(seq);
  }
}
