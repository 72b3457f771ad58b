package sphinxserve.kvcache;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * JUnit 5 extension that builds real KV storage and managers for a test, and after every test runs the
 * managers' invariant checker (blocks conserved, reference counts match the tables, ...) and frees the storage.
 */
final class KvFixture implements AfterEachCallback {

  /** Layers of the test layout. */
  static final int NUM_LAYERS = 2;
  /** KV heads of the test layout. */
  static final int NUM_KV_HEADS = 2;
  /** Floats per head of the test layout. */
  static final int HEAD_DIM = 4;

  private final List<KvCacheManager> managers = new ArrayList<>();
  private final List<KvCacheStorage> storages = new ArrayList<>();

  /** A small real layout. */
  static KvCacheLayout layout(int blockSize, int numBlocks) {
    return new KvCacheLayout(NUM_LAYERS, NUM_KV_HEADS, HEAD_DIM, blockSize, numBlocks);
  }

  /** Storage of {@code layout}, freed after the test. */
  KvCacheStorage storage(KvCacheLayout layout) {
    KvCacheStorage storage = new KvCacheStorage(layout);
    storages.add(storage);
    return storage;
  }

  /** A prefix-caching manager over fresh storage, checked after the test. */
  KvCacheManager manager(int blockSize, int numBlocks) {
    return manager(storage(layout(blockSize, numBlocks)), true);
  }

  /** A manager over {@code storage}, checked after the test. */
  KvCacheManager manager(KvCacheStorage storage, boolean prefixCaching) {
    KvCacheManager manager = new KvCacheManager(storage, prefixCaching);
    managers.add(manager);
    return manager;
  }

  @Override
  public void afterEach(ExtensionContext context) {
    try {
      for (KvCacheManager manager : managers) manager.checkInvariants();
    } finally {
      storages.forEach(KvCacheStorage::close);
      managers.clear();
      storages.clear();
    }
  }

  /** Floats a slot holds in every layer and head: distinct per {@code content} and per position in the slot. */
  static float[] slotFloats(KvCacheLayout layout, long content, boolean values) {
    float[] out = new float[layout.numLayers() * layout.numKvHeads() * layout.headDim()];
    java.util.SplittableRandom random = new java.util.SplittableRandom(content * 2 + (values ? 1 : 0));
    for (int i = 0; i < out.length; i++) out[i] = random.nextInt(1 << 22);
    return out;
  }

  /** Writes token {@code position}'s K/V, derived from {@code content}, into its slot per {@code blockTable}. */
  static void writeToken(KvCacheStorage storage, int[] blockTable, int position, long content) {
    KvCacheLayout layout = storage.layout();
    int block = blockTable[position / layout.blockSize()];
    int slot = position % layout.blockSize();
    storage.writeSlot(block, slot, slotFloats(layout, content, false), slotFloats(layout, content, true));
  }

  /** Mixes a 64-bit chain value with one more input (SplitMix64 finaliser). */
  static long mix(long chain, long input) {
    long z = chain * 0x9E3779B97F4A7C15L + input + 0x632BE59BD9B4E5DL;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
  /**
   * What a real model's K/V depends on, per position: a chain over the bundle, salt, token ids and, at image
   * positions, the image digest and offset. Equal prefixes give equal chains; different ones differ.
   */
  static long[] contents(PrefixKey key, int[] tokenIds, int numTokens) {
    long chain = mix(key.bundleId().hashCode(), key.tenantSalt().map(String::hashCode).orElse(-1));
    long[] out = new long[numTokens];
    for (int p = 0; p < numTokens; p++) {
      chain = mix(chain, tokenIds[p]);
      for (ImageSpan span : key.imageSpans()) {
        if (p >= span.start() && p < span.end()) chain = mix(chain, span.digest().hashCode() * 131L + (p - span.start()));
      }
      out[p] = chain;
    }
    return out;
  }

  /** The bytes {@link KvCacheStorage#blockBytes} returns for a block holding {@code contents[from .. from+n)}. */
  static byte[] expectedBlockBytes(KvCacheStorage scratch, long[] contents, int from, int n) {
    for (int slot = 0; slot < n; slot++) {
      KvCacheLayout layout = scratch.layout();
      scratch.writeSlot(0, slot, slotFloats(layout, contents[from + slot], false), slotFloats(layout, contents[from + slot], true));
    }
    return scratch.blockBytes(0, n);
  }
}
