package sphinxserve.structured;

import java.util.Arrays;

/**
 * A cached token mask in the smallest of three forms (xgrammar's adaptive storage): the allowed ids when few
 * are allowed, the rejected ids when few are rejected (inside a string nearly everything is allowed), else the
 * bitset. Immutable.
 */
final class StoredMask {
  private static final int ALLOWED = 0;
  private static final int REJECTED = 1;
  private static final int BITS = 2;

  private final int kind;
  private final int[] ids;
  private final long[] bits;
  private final int size;

  private StoredMask(int kind, int[] ids, long[] bits, int size) {
    this.kind = kind;
    this.ids = ids;
    this.bits = bits;
    this.size = size;
  }

  /** The smallest form of {@code bits}, a mask over {@code size} ids. */
  static StoredMask of(long[] bits, int size) {
    int numAllowed = 0;
    for (long w : bits) numAllowed += Long.bitCount(w);
    int numRejected = size - numAllowed;
    if (Math.min(numAllowed, numRejected) * 4L >= bits.length * 8L) return new StoredMask(BITS, null, bits, size);
    boolean listAllowed = numAllowed <= numRejected;
    int[] ids = new int[listAllowed ? numAllowed : numRejected];
    int n = 0;
    for (int id = 0; id < size; id++) {
      if (((bits[id >>> 6] >>> id & 1) != 0) == listAllowed) ids[n++] = id;
    }
    return new StoredMask(listAllowed ? ALLOWED : REJECTED, ids, null, size);
  }

  /** Writes the mask into the first {@code ceil(size / 64)} words of {@code out}. */
  void copyTo(long[] out) {
    int words = (size + 63) >>> 6;
    switch (kind) {
      case BITS -> System.arraycopy(bits, 0, out, 0, words);
      case ALLOWED -> {
        Arrays.fill(out, 0, words, 0L);
        for (int id : ids) out[id >>> 6] |= 1L << id;
      }
      default -> {
        Arrays.fill(out, 0, words, -1L);
        if ((size & 63) != 0) out[words - 1] = (1L << (size & 63)) - 1;
        for (int id : ids) out[id >>> 6] &= ~(1L << id);
      }
    }
  }

  /** Approximate heap bytes. */
  long numBytes() {
    return 32L + (ids != null ? 4L * ids.length : 8L * bits.length);
  }
}
