package sphinxserve.kvcache;

/**
 * The longest cached prefix of a prompt, from {@link KvCacheManager#computedPrefix}: an opaque value the
 * scheduler passes back to {@link KvCacheManager#allocateSlots(long, PrefixKey, ComputedPrefix, int)}. Holds no
 * references: use it before any other allocation (the blocks are only cached, and an allocation may evict them).
 */
public final class ComputedPrefix {

  /** No cached prefix; for sequences admitted without a lookup. */
  public static final ComputedPrefix NONE = new ComputedPrefix(null, new int[0], new BlockHash[0], 0);

  private final PrefixKey key;
  private final int[] blockIds;
  private final BlockHash[] hashes;
  private final int numTokens;

  ComputedPrefix(PrefixKey key, int[] blockIds, BlockHash[] hashes, int numTokens) {
    this.key = key;
    this.blockIds = blockIds;
    this.hashes = hashes;
    this.numTokens = numTokens;
  }

  /** Prompt tokens whose KV is cached: the sequence's starting {@code numComputedTokens}. */
  public int numTokens() {
    return numTokens;
  }

  /** Cached full blocks. */
  public int numBlocks() {
    return blockIds.length;
  }

  PrefixKey key() {
    return key;
  }

  int blockId(int i) {
    return blockIds[i];
  }

  BlockHash hash(int i) {
    return hashes[i];
  }

  @Override
  public String toString() {
    return "ComputedPrefix[" + numTokens + " tokens in " + blockIds.length + " blocks]";
  }
}
