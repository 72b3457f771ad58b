package sphinxserve.kvcache;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.HexFormat;

/**
 * The full 32-byte SHA-256 identity of a full block's contents: its parent block's hash, its token ids and its
 * extra keys (see {@link BlockHasher}). Immutable; equal exactly when all 256 bits are equal.
 */
public final class BlockHash {
  /*
   * Held as four longs rather than a byte[]: equals is four compares and the object is small. The full digest is
   * kept on purpose — a truncated hash once let two different images share KV elsewhere, so no collision short of
   * a SHA-256 collision can make two prefixes share a block.
   */

  /** Bytes of a SHA-256 digest. */
  public static final int BYTES = 32;

  private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

  private final long w0;
  private final long w1;
  private final long w2;
  private final long w3;

  private BlockHash(long w0, long w1, long w2, long w3) {
    this.w0 = w0;
    this.w1 = w1;
    this.w2 = w2;
    this.w3 = w3;
  }

  /** The hash whose bytes are {@code digest[offset .. offset+32)}. */
  static BlockHash of(byte[] digest, int offset) {
    return new BlockHash(
        (long) LONGS.get(digest, offset),
        (long) LONGS.get(digest, offset + 8),
        (long) LONGS.get(digest, offset + 16),
        (long) LONGS.get(digest, offset + 24));
  }

  /** Writes the 32 bytes into {@code out} at {@code offset}. */
  void writeTo(byte[] out, int offset) {
    LONGS.set(out, offset, w0);
    LONGS.set(out, offset + 8, w1);
    LONGS.set(out, offset + 16, w2);
    LONGS.set(out, offset + 24, w3);
  }

  /** The 32 digest bytes. */
  public byte[] toBytes() {
    byte[] out = new byte[BYTES];
    writeTo(out, 0);
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof BlockHash h && h.w0 == w0 && h.w1 == w1 && h.w2 == w2 && h.w3 == w3;
  }

  @Override
  public int hashCode() {
    // Uniformly distributed already; fold the first word.
    return (int) (w0 ^ (w0 >>> 32));
  }

  /** Lower-case hex of the 32 bytes. */
  @Override
  public String toString() {
    return HexFormat.of().formatHex(toBytes());
  }
}
