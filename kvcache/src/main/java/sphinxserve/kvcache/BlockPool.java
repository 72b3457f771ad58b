package sphinxserve.kvcache;

import java.util.HashMap;

/**
 * The physical blocks of a paged KV cache: reference counts, the free list, the cached-block LRU and the
 * hash → block map. Knows nothing about sequences or requests. Confined to the engine thread; the counters are
 * volatile so that {@link KvCacheManager#stats()} can read them from any thread.
 */
final class BlockPool {
  /*
   * Every block is in exactly one of three states:
   *
   *   FREE    refCount 0, no hash. Sits in the free list.
   *   CACHED  refCount 0, has a hash (its full contents are a reusable prefix). Sits in the LRU list, ordered by
   *           the time its refCount reached zero: head = least recently freed.
   *   IN_USE  refCount >= 1, in no list; it may have a hash (a full, registered block) or not.
   *
   * Both lists are intrusive doubly linked lists over int[] prev / next with two sentinels (index numBlocks is the
   * free list's, numBlocks + 1 the LRU's), so a cache hit removes a block from the middle of the LRU in O(1) and
   * nothing is allocated per operation. allocate() takes from the free list and evicts the LRU head only when the
   * free list is empty; an IN_USE block is in no list and so is never evicted.
   *
   * Invariants (checked by checkInvariants): numFree + numCached + numInUse == numBlocks; list membership matches
   * state; a block has a hash iff the map maps that hash to it; CACHED blocks are full; numEmptySlots is the sum of
   * (blockSize - numFilled) over IN_USE blocks.
   */

  /** Returned by {@link #allocate()} when no block is free or cached. */
  static final int NO_BLOCK = -1;

  private static final byte FREE = 0;
  private static final byte CACHED = 1;
  private static final byte IN_USE = 2;

  private final int numBlocks;
  private final int blockSize;
  private final int freeSentinel;
  private final int lruSentinel;
  private final int[] refCount;
  private final int[] numFilled;
  private final int[] prev;
  private final int[] next;
  private final byte[] state;
  private final BlockHash[] hashes;
  private final HashMap<BlockHash, Integer> blocksByHash;

  private volatile int numFree;
  private volatile int numCached;
  private volatile long numEmptySlots;
  private volatile long numEvictions;

  BlockPool(int numBlocks, int blockSize) {
    if (numBlocks < 1 || blockSize < 1) throw new IllegalArgumentException("block pool: numBlocks and blockSize must be positive");
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.freeSentinel = numBlocks;
    this.lruSentinel = numBlocks + 1;
    this.refCount = new int[numBlocks];
    this.numFilled = new int[numBlocks];
    this.prev = new int[numBlocks + 2];
    this.next = new int[numBlocks + 2];
    this.state = new byte[numBlocks];
    this.hashes = new BlockHash[numBlocks];
    this.blocksByHash = HashMap.newHashMap(numBlocks);
    prev[freeSentinel] = next[freeSentinel] = freeSentinel;
    prev[lruSentinel] = next[lruSentinel] = lruSentinel;
    for (int b = 0; b < numBlocks; b++) {
      linkLast(freeSentinel, b);
    }
    this.numFree = numBlocks;
  }

  int numBlocks() {
    return numBlocks;
  }

  int blockSize() {
    return blockSize;
  }

  /** Blocks that {@link #allocate()} can still hand out: free plus cached. */
  int numAvailable() {
    return numFree + numCached;
  }

  int numFree() {
    return numFree;
  }

  int numCached() {
    return numCached;
  }

  long numEmptySlots() {
    return numEmptySlots;
  }

  long numEvictions() {
    return numEvictions;
  }

  /**
   * Takes a block for exclusive use (refCount 1, no slots filled): the free list's head, else the least recently
   * freed cached block, whose hash is dropped. {@link #NO_BLOCK} when neither list has one.
   */
  int allocate() {
    int block = next[freeSentinel];
    if (block != freeSentinel) {
      unlink(block);
      numFree = numFree - 1;
    } else {
      block = next[lruSentinel];
      if (block == lruSentinel) return NO_BLOCK;
      unlink(block);
      blocksByHash.remove(hashes[block]);
      hashes[block] = null;
      numCached = numCached - 1;
      numEvictions = numEvictions + 1;
    }
    state[block] = IN_USE;
    refCount[block] = 1;
    numFilled[block] = 0;
    numEmptySlots = numEmptySlots + blockSize;
    return block;
  }

  /** Adds a reference to a block that is in use or cached (a prefix hit revives a cached block). */
  void acquire(int block) {
    switch (state[block]) {
      case IN_USE -> refCount[block]++;
      case CACHED -> {
        unlink(block);
        numCached = numCached - 1;
        state[block] = IN_USE;
        refCount[block] = 1;
        numEmptySlots = numEmptySlots + (blockSize - numFilled[block]);
      }
      default -> throw new IllegalStateException("use after free: block " + block + " is free");
    }
  }

  /**
   * Drops a reference. At zero the block becomes cached (most recently freed end of the LRU) when it has a hash,
   * else free. Throws on a block whose refCount is already zero: a double free.
   */
  void release(int block) {
    if (state[block] != IN_USE) throw new IllegalStateException("double free: block " + block + " has refCount 0");
    if (--refCount[block] > 0) return;
    numEmptySlots = numEmptySlots - (blockSize - numFilled[block]);
    if (hashes[block] != null) {
      state[block] = CACHED;
      linkLast(lruSentinel, block);
      numCached = numCached + 1;
    } else {
      state[block] = FREE;
      numFilled[block] = 0;
      linkLast(freeSentinel, block);
      numFree = numFree + 1;
    }
  }

  /** Records that {@code numSlots} slots of an in-use block hold tokens. */
  void setFilled(int block, int numSlots) {
    checkInUse(block);
    numEmptySlots = numEmptySlots - (numSlots - numFilled[block]);
    numFilled[block] = numSlots;
  }

  int numFilled(int block) {
    return numFilled[block];
  }

  int refCount(int block) {
    return refCount[block];
  }

  /**
   * Makes a full, in-use block findable by {@code hash}. False (and nothing changes) when the block already has a
   * hash or another block already holds {@code hash}: the first block computed for a prefix keeps it.
   */
  boolean register(int block, BlockHash hash) {
    checkInUse(block);
    if (numFilled[block] != blockSize) throw new IllegalStateException("register: block " + block + " is not full");
    if (hashes[block] != null) return false;
    if (blocksByHash.putIfAbsent(hash, block) != null) return false;
    hashes[block] = hash;
    return true;
  }

  /** The block holding {@code hash} (in use or cached), or {@link #NO_BLOCK}. */
  int cachedBlock(BlockHash hash) {
    Integer block = blocksByHash.get(hash);
    return block == null ? NO_BLOCK : block;
  }

  /** The hash a block is registered under, or null. */
  BlockHash hashOf(int block) {
    return hashes[block];
  }

  /** Whether a block has refCount 0 and a hash. */
  boolean isCached(int block) {
    return state[block] == CACHED;
  }

  /** Evicts up to {@code maxBlocks} cached blocks, least recently freed first, into the free list. */
  int evictCached(int maxBlocks) {
    int evicted = 0;
    while (evicted < maxBlocks) {
      int block = next[lruSentinel];
      if (block == lruSentinel) break;
      unlink(block);
      blocksByHash.remove(hashes[block]);
      hashes[block] = null;
      numFilled[block] = 0;
      state[block] = FREE;
      linkLast(freeSentinel, block);
      numCached = numCached - 1;
      numFree = numFree + 1;
      numEvictions = numEvictions + 1;
      evicted++;
    }
    return evicted;
  }

  /** The cached blocks from least to most recently freed; for tests. */
  int[] lruOrder() {
    int[] order = new int[numCached];
    int i = 0;
    for (int b = next[lruSentinel]; b != lruSentinel; b = next[b]) order[i++] = b;
    return order;
  }

  /** Throws AssertionError describing the first broken invariant. */
  void checkInvariants() {
    int free = countList(freeSentinel, FREE);
    int cached = countList(lruSentinel, CACHED);
    check(free == numFree, "free list holds " + free + " blocks, counter says " + numFree);
    check(cached == numCached, "LRU holds " + cached + " blocks, counter says " + numCached);
    long empty = 0;
    int inUse = 0;
    for (int b = 0; b < numBlocks; b++) {
      switch (state[b]) {
        case FREE -> check(refCount[b] == 0 && hashes[b] == null, "free block " + b + " has refCount " + refCount[b] + " or a hash");
        case CACHED -> check(refCount[b] == 0 && hashes[b] != null && numFilled[b] == blockSize, "cached block " + b + " is referenced, unhashed or not full");
        default -> {
          inUse++;
          check(refCount[b] >= 1, "in-use block " + b + " has refCount " + refCount[b]);
          empty += blockSize - numFilled[b];
        }
      }
      if (hashes[b] != null) check(Integer.valueOf(b).equals(blocksByHash.get(hashes[b])), "block " + b + "'s hash maps elsewhere");
    }
    check(free + cached + inUse == numBlocks, "blocks not conserved: " + free + " + " + cached + " + " + inUse + " != " + numBlocks);
    check(blocksByHash.size() == countHashed(), "hash map has entries for blocks without hashes");
    check(empty == numEmptySlots, "empty slots " + empty + ", counter says " + numEmptySlots);
  }

  private int countHashed() {
    int n = 0;
    for (BlockHash h : hashes) if (h != null) n++;
    return n;
  }

  private int countList(int sentinel, byte expected) {
    int n = 0;
    for (int b = next[sentinel]; b != sentinel; b = next[b]) {
      check(state[b] == expected, "block " + b + " in the wrong list");
      check(next[prev[b]] == b && prev[next[b]] == b, "list links broken at block " + b);
      if (++n > numBlocks) throw new AssertionError("cycle in list");
    }
    return n;
  }

  private static void check(boolean ok, String message) {
    if (!ok) throw new AssertionError("block pool: " + message);
  }

  private void checkInUse(int block) {
    if (state[block] != IN_USE) throw new IllegalStateException("use after free: block " + block + " has refCount 0");
  }

  private void linkLast(int sentinel, int block) {
    int last = prev[sentinel];
    prev[block] = last;
    next[block] = sentinel;
    next[last] = block;
    prev[sentinel] = block;
  }

  private void unlink(int block) {
    int p = prev[block];
    int n = next[block];
    next[p] = n;
    prev[n] = p;
    prev[block] = next[block] = block;
  }
}
