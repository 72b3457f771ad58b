package sphinxserve.kvcache;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.security.DigestException;
import java.security.MessageDigest;

/**
 * Computes chained block hashes: {@code hash(i) = SHA-256(hash(i-1), token ids of block i, extra keys of block i)}
 * with {@code hash(-1)} the {@link PrefixKey#rootHash() root} of the prompt's key. Confined to one thread (it
 * reuses one digest and one buffer).
 */
final class BlockHasher {
  /*
   * Message layout of block i covering positions [s, s + blockSize):
   *
   *   parent hash (32) | blockSize token ids, int32 little-endian | per overlapping image span:
   *       'I' | digest length int32 | digest bytes | first overlapped position minus span start int32
   *           | first overlapped position minus s int32 | overlap length int32
   *
   * The image part makes blocks over two different images differ even when their placeholder token ids are the
   * same; the offsets pin which part of which image sits where. Only full blocks are hashed: a partial block can
   * still change and is never shared through the cache.
   */

  private static final VarHandle INTS = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
  private static final byte IMAGE_TAG = 'I';

  private final int blockSize;
  private final MessageDigest sha = PrefixKey.sha256();
  private final byte[] out = new byte[BlockHash.BYTES];
  private byte[] buffer;

  BlockHasher(int blockSize) {
    this.blockSize = blockSize;
    this.buffer = new byte[BlockHash.BYTES + blockSize * Integer.BYTES + 64];
  }

  /** The hash of block {@code blockIndex} of {@code tokenIds} under {@code key}, given its parent's hash. */
  BlockHash hash(BlockHash parent, PrefixKey key, int[] tokenIds, int blockIndex) {
    int start = blockIndex * blockSize;
    int end = start + blockSize;
    int at = 0;
    parent.writeTo(buffer, at);
    at += BlockHash.BYTES;
    for (int p = start; p < end; p++) {
      INTS.set(buffer, at, tokenIds[p]);
      at += Integer.BYTES;
    }
    var spans = key.imageSpans();
    for (int i = 0; i < spans.size(); i++) {
      ImageSpan span = spans.get(i);
      if (span.start() >= end) break;
      if (!span.overlaps(start, end)) continue;
      byte[] digest = key.imageDigestBytes(i);
      int from = Math.max(start, span.start());
      int to = Math.min(end, span.end());
      at = ensure(at, 1 + 4 * Integer.BYTES + digest.length);
      buffer[at++] = IMAGE_TAG;
      INTS.set(buffer, at, digest.length);
      at += Integer.BYTES;
      System.arraycopy(digest, 0, buffer, at, digest.length);
      at += digest.length;
      INTS.set(buffer, at, from - span.start());
      INTS.set(buffer, at + 4, from - start);
      INTS.set(buffer, at + 8, to - from);
      at += 3 * Integer.BYTES;
    }
    sha.update(buffer, 0, at);
    try {
      sha.digest(out, 0, BlockHash.BYTES);
    } catch (DigestException e) {
      throw new AssertionError("32-byte output always fits SHA-256", e);
    }
    return BlockHash.of(out, 0);
  }

  private int ensure(int at, int more) {
    if (at + more > buffer.length) {
      buffer = java.util.Arrays.copyOf(buffer, Math.max(buffer.length * 2, at + more));
    }
    return at;
  }
}
