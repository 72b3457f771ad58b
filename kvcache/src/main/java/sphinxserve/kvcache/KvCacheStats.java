package sphinxserve.kvcache;

/**
 * A snapshot of KV cache accounting, readable from any thread ({@link KvCacheManager#stats()}). Each field is read
 * atomically; {@code numInUseBlocks} is derived so that free + cached + in use = total always holds.
 *
 * @param numBlocks blocks in the pool
 * @param blockSize token slots per block
 * @param numFreeBlocks blocks with no reference and no cached contents
 * @param numCachedBlocks blocks with no reference whose contents stay reusable as a prefix (evictable)
 * @param numInUseBlocks blocks referenced by at least one sequence
 * @param numPrefixLookups calls to {@link KvCacheManager#computedPrefix}
 * @param numPrefixQueryTokens prompt tokens those lookups asked about
 * @param numPrefixHitTokens prompt tokens those lookups found cached
 * @param numEvictions cached blocks whose contents were dropped to make room (or on request)
 * @param numEmptySlots slots in in-use blocks that hold no token (internal fragmentation)
 */
public record KvCacheStats(
    int numBlocks,
    int blockSize,
    int numFreeBlocks,
    int numCachedBlocks,
    int numInUseBlocks,
    long numPrefixLookups,
    long numPrefixQueryTokens,
    long numPrefixHitTokens,
    long numEvictions,
    long numEmptySlots) {

  /** Fraction of blocks in use, 0–1 ({@code sphinx.kv_cache.usage}); cached blocks count as reclaimable. */
  public double usage() {
    return (double) numInUseBlocks / numBlocks;
  }

  /** Fraction of in-use slots that hold no token, 0–1; 0 when nothing is in use. */
  public double fragmentation() {
    long slots = (long) numInUseBlocks * blockSize;
    return slots == 0 ? 0.0 : (double) numEmptySlots / slots;
  }

  /** Fraction of looked-up prompt tokens that hit the prefix cache, 0–1. */
  public double prefixHitRate() {
    return numPrefixQueryTokens == 0 ? 0.0 : (double) numPrefixHitTokens / numPrefixQueryTokens;
  }
}
