package sphinxserve.kvcache;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The off-heap memory behind a paged KV cache: for every layer one key pool and one value pool (layout in
 * {@link KvCacheLayout}), allocated zeroed from one shared {@link Arena} and freed by {@link #close()}.
 *
 * <p>The decoder graph writes into these pools in place: ONNX Runtime wraps a direct buffer without copying
 * it, and does not fix byte order, so every buffer handed out is <b>native-order</b> (a big-endian view would
 * silently produce garbage). Block contents are written only by the runtime during a step and by
 * {@link #copyBlock} (copy-on-write) on the engine thread between steps ({@link #writeSlot} is for tests and tools).
 *
 * <p>The pools are outside the Java heap and, allocated from an explicit arena, not counted against
 * {@code -XX:MaxDirectMemorySize} either (JDK 25 reserves direct memory only for {@code Arena.ofAuto()} segments):
 * only the host's or container's memory bounds them. Allocation zeroes every byte, so the whole pool is resident
 * from the start and a pool that does not fit fails at start, not under load.
 *
 * <p>Closing frees the native memory at once; any buffer obtained before then must no longer be used (the
 * arena invalidates the segments, so Java-side access fails rather than reading freed memory).
 */
public final class KvCacheStorage implements AutoCloseable {

  private final KvCacheLayout layout;
  private final Arena arena;
  private final MemorySegment[] keyPools;
  private final MemorySegment[] valuePools;

  /** Allocates and zeroes all pools of {@code layout}. */
  public KvCacheStorage(KvCacheLayout layout) {
    this.layout = layout;
    this.arena = Arena.ofShared();
    this.keyPools = new MemorySegment[layout.numLayers()];
    this.valuePools = new MemorySegment[layout.numLayers()];
    try {
      for (int layer = 0; layer < layout.numLayers(); layer++) {
        // 64-byte alignment: whole cache lines for the graph's gathers and SIMD copies.
        keyPools[layer] = arena.allocate(layout.bytesPerPool(), 64);
        valuePools[layer] = arena.allocate(layout.bytesPerPool(), 64);
      }
    } catch (RuntimeException | OutOfMemoryError e) {
      arena.close();
      throw e;
    }
  }

  public KvCacheLayout layout() {
    return layout;
  }

  /** A native-order direct view of layer {@code layer}'s key pool, for the runtime to wrap as a tensor. */
  public ByteBuffer keyBuffer(int layer) {
    return keyPools[layer].asByteBuffer().order(ByteOrder.nativeOrder());
  }

  /** A native-order direct view of layer {@code layer}'s value pool. */
  public ByteBuffer valueBuffer(int layer) {
    return valuePools[layer].asByteBuffer().order(ByteOrder.nativeOrder());
  }

  /** Copies every layer's keys and values of block {@code src} into block {@code dst} (copy-on-write). */
  public void copyBlock(int src, int dst) {
    checkBlock(src);
    checkBlock(dst);
    long bytes = (long) layout.blockSize() * layout.headDim() * KvCacheLayout.BYTES_PER_ELEMENT;
    for (int layer = 0; layer < layout.numLayers(); layer++) {
      for (int head = 0; head < layout.numKvHeads(); head++) {
        long from = layout.byteOffset(head, src, 0);
        long to = layout.byteOffset(head, dst, 0);
        MemorySegment.copy(keyPools[layer], from, keyPools[layer], to, bytes);
        MemorySegment.copy(valuePools[layer], from, valuePools[layer], to, bytes);
      }
    }
  }

  /**
   * Every byte block {@code block} holds for the first {@code numSlots} slots, all layers, keys then values,
   * head after head. For tests and diagnostics: two blocks with equal contents return equal arrays.
   */
  public byte[] blockBytes(int block, int numSlots) {
    checkBlock(block);
    if (numSlots < 0 || numSlots > layout.blockSize()) throw new IllegalArgumentException("numSlots " + numSlots);
    int run = numSlots * layout.headDim() * KvCacheLayout.BYTES_PER_ELEMENT;
    byte[] out = new byte[2 * layout.numLayers() * layout.numKvHeads() * run];
    int at = 0;
    for (int layer = 0; layer < layout.numLayers(); layer++) {
      for (MemorySegment pool : new MemorySegment[] {keyPools[layer], valuePools[layer]}) {
        for (int head = 0; head < layout.numKvHeads(); head++) {
          MemorySegment.copy(pool, ValueLayout.JAVA_BYTE, layout.byteOffset(head, block, 0), out, at, run);
          at += run;
        }
      }
    }
    return out;
  }

  /** Writes {@code value} into every float of one slot (all layers, heads, keys and values); for tests. */
  public void fillSlot(int block, int slotInBlock, float value) {
    checkBlock(block);
    for (int layer = 0; layer < layout.numLayers(); layer++) {
      for (int head = 0; head < layout.numKvHeads(); head++) {
        long offset = layout.byteOffset(head, block, slotInBlock);
        for (int d = 0; d < layout.headDim(); d++) {
          keyPools[layer].set(ValueLayout.JAVA_FLOAT, offset + 4L * d, value);
          valuePools[layer].set(ValueLayout.JAVA_FLOAT, offset + 4L * d, -value);
        }
      }
    }
  }

  /**
   * Writes one slot's keys and values in every layer and head. Both arrays hold {@code numLayers × numKvHeads ×
   * headDim} floats ordered layer, head, dim. For tests and tools; the runtime writes through the graph.
   */
  public void writeSlot(int block, int slotInBlock, float[] keys, float[] values) {
    checkBlock(block);
    if (slotInBlock < 0 || slotInBlock >= layout.blockSize()) throw new IndexOutOfBoundsException("slot " + slotInBlock);
    int perSlot = layout.numLayers() * layout.numKvHeads() * layout.headDim();
    if (keys.length != perSlot || values.length != perSlot) {
      throw new IllegalArgumentException("writeSlot: expected " + perSlot + " floats, got keys " + keys.length + ", values " + values.length);
    }
    int at = 0;
    for (int layer = 0; layer < layout.numLayers(); layer++) {
      for (int head = 0; head < layout.numKvHeads(); head++) {
        long offset = layout.byteOffset(head, block, slotInBlock);
        MemorySegment.copy(keys, at, keyPools[layer], ValueLayout.JAVA_FLOAT, offset, layout.headDim());
        MemorySegment.copy(values, at, valuePools[layer], ValueLayout.JAVA_FLOAT, offset, layout.headDim());
        at += layout.headDim();
      }
    }
  }

  /** Frees all pools. Idempotent. */
  @Override
  public void close() {
    if (arena.scope().isAlive()) {
      arena.close();
    }
  }

  private void checkBlock(int block) {
    if (block < 0 || block >= layout.numBlocks()) {
      throw new IndexOutOfBoundsException("block " + block + " outside 0.." + (layout.numBlocks() - 1));
    }
  }
}
