package sphinxserve.kvcache;

/**
 * Geometry of a paged KV cache: per decoder layer one key pool and one value pool, each laid out head-major
 * as {@code [numKvHeads, numBlocks, blockSize, headDim]} float32.
 *
 * <p>Head-major keeps one head's history of one block contiguous ({@code blockSize × headDim} floats), which
 * is what the decoder graph's {@code Gather(axis=1)} by block table copies; a blocks-major layout plus a
 * Transpose measured ~1.4× slower here (DESIGN.md, "KV cache layout").
 *
 * @param numLayers decoder layers
 * @param numKvHeads key/value heads per layer
 * @param headDim floats per head
 * @param blockSize token slots per block
 * @param numBlocks blocks in the pool (block ids are {@code 0 .. numBlocks-1})
 */
public record KvCacheLayout(int numLayers, int numKvHeads, int headDim, int blockSize, int numBlocks) {

  /** Bytes per element: the pools hold float32. */
  public static final int BYTES_PER_ELEMENT = Float.BYTES;

  /** Default tokens per block, as in vLLM. */
  public static final int DEFAULT_BLOCK_SIZE = 16;

  /**
   * Most bytes of one pool: the runtime hands each pool to ONNX Runtime as one direct {@code ByteBuffer}, whose
   * capacity is an {@code int}.
   */
  public static final long MAX_POOL_BYTES = Integer.MAX_VALUE;

  public KvCacheLayout {
    if (numLayers < 1 || numKvHeads < 1 || headDim < 1 || blockSize < 1 || numBlocks < 1) {
      throw new IllegalArgumentException("KV layout: every dimension must be positive, got " + dims(numLayers, numKvHeads, headDim, blockSize, numBlocks));
    }
    long poolBytes = (long) numKvHeads * numBlocks * blockSize * headDim * BYTES_PER_ELEMENT;
    if (poolBytes > MAX_POOL_BYTES) {
      throw new IllegalArgumentException("KV layout: one layer's pool would take " + poolBytes + " bytes; at most 2 GiB per pool (fewer blocks)");
    }
  }

  /** Floats of one pool (one layer's keys, or values). */
  public long floatsPerPool() {
    return (long) numKvHeads * numBlocks * blockSize * headDim;
  }

  /** Bytes of one pool. */
  public long bytesPerPool() {
    return floatsPerPool() * BYTES_PER_ELEMENT;
  }

  /** Bytes all pools take: keys and values of every layer. */
  public long totalBytes() {
    return 2L * numLayers * bytesPerPool();
  }

  /** Bytes one token occupies across all layers, keys and values. */
  public long bytesPerToken() {
    return 2L * numLayers * numKvHeads * headDim * BYTES_PER_ELEMENT;
  }

  /** Bytes one block occupies across all layers, keys and values. */
  public long bytesPerBlock() {
    return bytesPerToken() * blockSize;
  }

  /** The most blocks a pool of this geometry can have: one pool is at most {@link #MAX_POOL_BYTES}. */
  public int maxNumBlocks() {
    return (int) (MAX_POOL_BYTES / ((long) numKvHeads * blockSize * headDim * BYTES_PER_ELEMENT));
  }

  /** Total token slots. */
  public long numSlots() {
    return (long) numBlocks * blockSize;
  }

  /** The pools' tensor shape, {@code [numKvHeads, numBlocks, blockSize, headDim]}. */
  public long[] poolShape() {
    return new long[] {numKvHeads, numBlocks, blockSize, headDim};
  }

  /** Byte offset of (head, block, slot-in-block, 0) inside one pool. */
  long byteOffset(int head, int block, int slotInBlock) {
    return (((long) head * numBlocks + block) * blockSize + slotInBlock) * headDim * BYTES_PER_ELEMENT;
  }

  private static String dims(int... values) {
    return java.util.Arrays.toString(values);
  }
}
