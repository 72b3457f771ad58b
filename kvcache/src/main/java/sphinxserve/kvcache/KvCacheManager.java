package sphinxserve.kvcache;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Objects;

/**
 * Per-sequence block tables over a {@link BlockPool}, with image-aware prefix caching and copy-on-write forks:
 * the KV cache API the scheduler drives.
 *
 * <p><b>Threading:</b> every method except {@link #stats()} must be called on one thread, the engine thread
 * (the first thread to call one owns the manager; with {@code -ea} any other thread fails an assertion).
 * {@link #stats()} may be called from any thread.
 *
 * <p><b>Running out:</b> {@link #allocateSlots} answers {@link AllocationResult.NotEnoughBlocks} and changes
 * nothing when the pool cannot supply every block asked for; it never throws for lack of blocks and never
 * overwrites a block another sequence holds. Misuse — a double free, a call for a freed sequence, a freed block
 * touched — throws {@link IllegalStateException}.
 */
public final class KvCacheManager {
  /*
   * A sequence (one id per sample; parallel samples of a prompt are forks) owns a block table: the physical
   * blocks holding its tokens' K/V in order. Token position p lives in table[p / blockSize] at slot p % blockSize.
   *
   *   positions   0 ........ 15 | 16 ....... 31 | 32 .. 37 [38 ...... 47]
   *   table       [    b7      ] [    b2       ] [   b9    :  empty      ]
   *               |<- prefix hit (shared, full, hashed) ->|
   *               |<---------- numComputed ----------->|<- allocated, not yet written by the step ->|
   *               |<------------------------ numSlots ------------------------------->|
   *
   * Only the last block can be partially filled. Full blocks are never written again, so they can be shared
   * freely: by a prefix hit (the pool's hash map) or by fork. A partially filled block is shared only by fork;
   * whichever sequence appends into it first while refCount > 1 copies it to a fresh block (copy-on-write) and
   * writes there, so a shared block's contents never change.
   *
   * Prefix caching (vLLM's automatic prefix caching, PagedAttention paper §4.4): when markComputed reports that a
   * block is full and its K/V written, its chained hash (BlockHasher) is registered with the pool; a later prompt
   * whose hash chain matches reuses the blocks. A lookup never covers the prompt's last token: the step must
   * compute at least one token to produce logits.
   *
   * Invariants (checkInvariants): the pool's; every block's refCount equals the number of tables holding it;
   * numComputed <= numSlots <= numBlocks * blockSize < numSlots + blockSize.
   */

  private final KvCacheStorage storage;
  private final BlockPool pool;
  private final BlockHasher hasher;
  private final boolean prefixCaching;
  private final int blockSize;
  private final HashMap<Long, Sequence> sequences = new HashMap<>();
  private Thread owner;

  private volatile long numPrefixLookups;
  private volatile long numPrefixQueryTokens;
  private volatile long numPrefixHitTokens;

  /** A manager over all blocks of {@code storage}, prefix caching on. */
  public KvCacheManager(KvCacheStorage storage) {
    this(storage, true);
  }

  /** A manager over all blocks of {@code storage}; {@code enablePrefixCaching} false makes every lookup miss. */
  public KvCacheManager(KvCacheStorage storage, boolean enablePrefixCaching) {
    this.storage = Objects.requireNonNull(storage, "storage");
    KvCacheLayout layout = storage.layout();
    this.blockSize = layout.blockSize();
    this.pool = new BlockPool(layout.numBlocks(), blockSize);
    this.hasher = new BlockHasher(blockSize);
    this.prefixCaching = enablePrefixCaching;
  }

  /** Token slots per block. */
  public int blockSize() {
    return blockSize;
  }

  /** Blocks in the pool. */
  public int numBlocks() {
    return pool.numBlocks();
  }

  /** Blocks needed to hold {@code numTokens} tokens in one sequence; lets the scheduler reject prompts that never fit. */
  public int blocksFor(int numTokens) {
    return ceilDiv(numTokens, blockSize);
  }

  /**
   * The longest cached prefix of a new prompt whose first {@code numTokens} token ids are in {@code tokenIds}.
   * Counts in the lookup statistics; takes no references (pass the result straight to
   * {@link #allocateSlots(long, PrefixKey, ComputedPrefix, int)}).
   */
  public ComputedPrefix computedPrefix(PrefixKey key, int[] tokenIds, int numTokens) {
    assert onOwnerThread();
    Objects.requireNonNull(key, "key");
    checkTokens(tokenIds, numTokens);
    numPrefixLookups = numPrefixLookups + 1;
    numPrefixQueryTokens = numPrefixQueryTokens + numTokens;
    if (!prefixCaching || numTokens <= blockSize) return ComputedPrefix.NONE;
    int maxBlocks = (numTokens - 1) / blockSize; // leave at least one token to compute
    int[] blockIds = new int[maxBlocks];
    BlockHash[] hashes = new BlockHash[maxBlocks];
    BlockHash parent = key.rootHash();
    int numHits = 0;
    while (numHits < maxBlocks) {
      BlockHash hash = hasher.hash(parent, key, tokenIds, numHits);
      int block = pool.cachedBlock(hash);
      if (block == BlockPool.NO_BLOCK) break;
      blockIds[numHits] = block;
      hashes[numHits] = hash;
      parent = hash;
      numHits++;
    }
    if (numHits == 0) return ComputedPrefix.NONE;
    numPrefixHitTokens = numPrefixHitTokens + (long) numHits * blockSize;
    return new ComputedPrefix(key, Arrays.copyOf(blockIds, numHits), Arrays.copyOf(hashes, numHits), numHits * blockSize);
  }

  /**
   * Starts sequence {@code seqId}: takes the cached {@code prefix} (its tokens count as computed) and allocates
   * slots for the next {@code numNewTokens} tokens after it. All or nothing.
   *
   * @throws IllegalStateException if {@code seqId} is already allocated, or {@code prefix} went stale (another
   *     allocation evicted its blocks between the lookup and this call)
   */
  public AllocationResult allocateSlots(long seqId, PrefixKey key, ComputedPrefix prefix, int numNewTokens) {
    assert onOwnerThread();
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(prefix, "prefix");
    if (numNewTokens < 0) throw new IllegalArgumentException("numNewTokens " + numNewTokens);
    if (sequences.containsKey(seqId)) throw new IllegalStateException("sequence " + seqId + " is already allocated");
    if (prefix != ComputedPrefix.NONE && !key.equals(prefix.key())) {
      throw new IllegalArgumentException("prefix was looked up under " + prefix.key() + ", not " + key);
    }
    int numRevived = 0;
    for (int i = 0; i < prefix.numBlocks(); i++) {
      int block = prefix.blockId(i);
      if (!prefix.hash(i).equals(pool.hashOf(block))) {
        throw new IllegalStateException("stale prefix: block " + block + " was evicted after the lookup; look up again right before allocating");
      }
      if (pool.isCached(block)) numRevived++;
    }
    int numSlots = prefix.numTokens() + numNewTokens;
    int numNeeded = ceilDiv(numSlots, blockSize) - prefix.numBlocks();
    int numAvailable = pool.numAvailable() - numRevived;
    if (numNeeded > numAvailable) return new AllocationResult.NotEnoughBlocks(numNeeded, numAvailable);

    Sequence seq = new Sequence(key, ceilDiv(numSlots, blockSize));
    for (int i = 0; i < prefix.numBlocks(); i++) {
      pool.acquire(prefix.blockId(i));
      seq.addBlock(prefix.blockId(i));
      seq.addHash(prefix.hash(i));
    }
    seq.numSlots = prefix.numTokens();
    seq.numComputed = prefix.numTokens();
    seq.numRegisteredBlocks = prefix.numBlocks();
    appendSlots(seq, numNewTokens);
    sequences.put(seqId, seq);
    return AllocationResult.allocated();
  }

  /**
   * Allocates slots for the next {@code numNewTokens} tokens of running sequence {@code seqId}: a new block only
   * when the last one is full, plus a copy when the last block is partially filled and shared. All or nothing.
   */
  public AllocationResult allocateSlots(long seqId, int numNewTokens) {
    assert onOwnerThread();
    Sequence seq = sequence(seqId);
    if (numNewTokens < 0) throw new IllegalArgumentException("numNewTokens " + numNewTokens);
    if (numNewTokens == 0) return AllocationResult.allocated();
    boolean copy = lastBlockShared(seq);
    int numNeeded = ceilDiv(seq.numSlots + numNewTokens, blockSize) - seq.numBlocks + (copy ? 1 : 0);
    if (numNeeded > pool.numAvailable()) return new AllocationResult.NotEnoughBlocks(numNeeded, pool.numAvailable());
    if (copy) copyLastBlock(seq);
    appendSlots(seq, numNewTokens);
    return AllocationResult.allocated();
  }

  /**
   * Records that the K/V of the first {@code numComputedTokens} tokens of {@code seqId} (ids in {@code tokenIds},
   * prompt then output) are written. Full blocks among them become reusable prefixes. Call after each step.
   */
  public void markComputed(long seqId, int[] tokenIds, int numComputedTokens) {
    assert onOwnerThread();
    Sequence seq = sequence(seqId);
    checkTokens(tokenIds, numComputedTokens);
    if (numComputedTokens < seq.numComputed || numComputedTokens > seq.numSlots) {
      throw new IllegalArgumentException("sequence " + seqId + ": numComputedTokens " + numComputedTokens + " outside [" + seq.numComputed + ", " + seq.numSlots + "]");
    }
    seq.numComputed = numComputedTokens;
    if (!prefixCaching) return;
    int numFull = numComputedTokens / blockSize;
    while (seq.numRegisteredBlocks < numFull) {
      int i = seq.numRegisteredBlocks;
      if (i == seq.numHashes) {
        seq.addHash(hasher.hash(i == 0 ? seq.key.rootHash() : seq.hashes[i - 1], seq.key, tokenIds, i));
      }
      pool.register(seq.blocks[i], seq.hashes[i]);
      seq.numRegisteredBlocks++;
    }
  }

  /**
   * Starts {@code childSeqId} as a copy of {@code parentSeqId} sharing all its blocks (parallel samples of one
   * prompt); needs no new block. The parent's allocated slots must all be computed (fork between steps).
   */
  public void fork(long parentSeqId, long childSeqId) {
    assert onOwnerThread();
    Sequence parent = sequence(parentSeqId);
    if (sequences.containsKey(childSeqId)) throw new IllegalStateException("sequence " + childSeqId + " is already allocated");
    if (parent.numComputed != parent.numSlots) {
      throw new IllegalStateException("fork: sequence " + parentSeqId + " has " + (parent.numSlots - parent.numComputed) + " allocated slots not yet computed");
    }
    for (int i = 0; i < parent.numBlocks; i++) pool.acquire(parent.blocks[i]);
    sequences.put(childSeqId, parent.copy());
  }

  /**
   * Frees sequence {@code seqId}'s blocks (last block first, so a prompt's tail is evicted before its head).
   *
   * @throws IllegalStateException if it is not allocated (a double free)
   */
  public void free(long seqId) {
    assert onOwnerThread();
    Sequence seq = sequences.remove(seqId);
    if (seq == null) throw new IllegalStateException("free: sequence " + seqId + " is not allocated (double free?)");
    for (int i = seq.numBlocks - 1; i >= 0; i--) pool.release(seq.blocks[i]);
  }

  /** The physical block ids of {@code seqId}'s tokens, in order (a copy). */
  public int[] blockTable(long seqId) {
    assert onOwnerThread();
    Sequence seq = sequence(seqId);
    return Arrays.copyOf(seq.blocks, seq.numBlocks);
  }

  /** Tokens of {@code seqId} that have a slot. */
  public int numSlots(long seqId) {
    assert onOwnerThread();
    return sequence(seqId).numSlots;
  }

  /** Tokens of {@code seqId} whose K/V is written, as last reported to {@link #markComputed}. */
  public int numComputedTokens(long seqId) {
    assert onOwnerThread();
    return sequence(seqId).numComputed;
  }

  /** Whether {@code seqId} is allocated. */
  public boolean contains(long seqId) {
    assert onOwnerThread();
    return sequences.containsKey(seqId);
  }

  /** Drops up to {@code maxBlocks} cached prefixes, least recently freed first; returns how many. */
  public int evictCachedBlocks(int maxBlocks) {
    assert onOwnerThread();
    return pool.evictCached(maxBlocks);
  }

  /** Accounting snapshot; safe from any thread. */
  public KvCacheStats stats() {
    int free = pool.numFree();
    int cached = pool.numCached();
    return new KvCacheStats(pool.numBlocks(), blockSize, free, cached, pool.numBlocks() - free - cached,
        numPrefixLookups, numPrefixQueryTokens, numPrefixHitTokens, pool.numEvictions(), pool.numEmptySlots());
  }

  /** Throws AssertionError describing the first broken invariant of the pool or the tables; for tests. */
  void checkInvariants() {
    pool.checkInvariants();
    int[] holders = new int[pool.numBlocks()];
    sequences.forEach((seqId, seq) -> {
      for (int i = 0; i < seq.numBlocks; i++) holders[seq.blocks[i]]++;
      if (!(seq.numComputed <= seq.numSlots && seq.numSlots <= seq.numBlocks * blockSize && seq.numBlocks * blockSize < seq.numSlots + blockSize)) {
        throw new AssertionError("sequence " + seqId + ": computed " + seq.numComputed + ", slots " + seq.numSlots + ", blocks " + seq.numBlocks);
      }
      for (int i = 0; i < seq.numBlocks; i++) {
        int expected = Math.min(blockSize, seq.numSlots - i * blockSize);
        if (pool.numFilled(seq.blocks[i]) != expected) {
          throw new AssertionError("sequence " + seqId + ": block " + seq.blocks[i] + " filled " + pool.numFilled(seq.blocks[i]) + ", expected " + expected);
        }
      }
    });
    for (int b = 0; b < holders.length; b++) {
      if (holders[b] != pool.refCount(b)) {
        throw new AssertionError("block " + b + " is in " + holders[b] + " tables but has refCount " + pool.refCount(b));
      }
    }
  }

  /** The pool; for tests and benchmarks in this package. */
  BlockPool pool() {
    return pool;
  }

  private boolean lastBlockShared(Sequence seq) {
    return seq.numSlots % blockSize != 0 && pool.refCount(seq.blocks[seq.numBlocks - 1]) > 1;
  }

  private void copyLastBlock(Sequence seq) {
    int shared = seq.blocks[seq.numBlocks - 1];
    int copy = pool.allocate();
    storage.copyBlock(shared, copy);
    pool.setFilled(copy, seq.numSlots % blockSize);
    pool.release(shared);
    seq.blocks[seq.numBlocks - 1] = copy;
  }

  /** Gives the next {@code numNewTokens} tokens slots; the caller has checked that the pool has the blocks. */
  private void appendSlots(Sequence seq, int numNewTokens) {
    int remaining = numNewTokens;
    int inLast = seq.numSlots % blockSize;
    if (inLast != 0 && remaining > 0) {
      int take = Math.min(blockSize - inLast, remaining);
      pool.setFilled(seq.blocks[seq.numBlocks - 1], inLast + take);
      remaining -= take;
    }
    while (remaining > 0) {
      int block = pool.allocate();
      if (block == BlockPool.NO_BLOCK) throw new AssertionError("pool ran out after the capacity check");
      int take = Math.min(blockSize, remaining);
      pool.setFilled(block, take);
      seq.addBlock(block);
      remaining -= take;
    }
    seq.numSlots += numNewTokens;
  }

  private Sequence sequence(long seqId) {
    Sequence seq = sequences.get(seqId);
    if (seq == null) throw new IllegalStateException("sequence " + seqId + " is not allocated (never allocated, or already freed)");
    return seq;
  }

  private static void checkTokens(int[] tokenIds, int numTokens) {
    Objects.requireNonNull(tokenIds, "tokenIds");
    if (numTokens < 0 || numTokens > tokenIds.length) {
      throw new IllegalArgumentException("numTokens " + numTokens + " outside [0, " + tokenIds.length + "]");
    }
  }

  private static int ceilDiv(int a, int b) {
    return Math.ceilDiv(a, b);
  }

  private boolean onOwnerThread() {
    Thread current = Thread.currentThread();
    if (owner == null) owner = current;
    if (owner != current) {
      throw new AssertionError("KvCacheManager is confined to thread '" + owner.getName() + "', called from '" + current.getName() + "'");
    }
    return true;
  }

  /** One sequence's table and progress. */
  private static final class Sequence {
    final PrefixKey key;
    int[] blocks;
    int numBlocks;
    int numSlots;
    int numComputed;
    BlockHash[] hashes;
    int numHashes;
    int numRegisteredBlocks; // blocks [0, numRegisteredBlocks) were offered to the pool's hash map

    Sequence(PrefixKey key, int capacity) {
      this.key = key;
      this.blocks = new int[Math.max(4, capacity)];
      this.hashes = new BlockHash[Math.max(4, capacity)];
    }

    void addBlock(int block) {
      if (numBlocks == blocks.length) blocks = Arrays.copyOf(blocks, blocks.length * 2);
      blocks[numBlocks++] = block;
    }

    void addHash(BlockHash hash) {
      if (numHashes == hashes.length) hashes = Arrays.copyOf(hashes, hashes.length * 2);
      hashes[numHashes++] = hash;
    }

    Sequence copy() {
      Sequence c = new Sequence(key, 0);
      c.blocks = Arrays.copyOf(blocks, blocks.length);
      c.numBlocks = numBlocks;
      c.numSlots = numSlots;
      c.numComputed = numComputed;
      c.hashes = Arrays.copyOf(hashes, hashes.length);
      c.numHashes = numHashes;
      c.numRegisteredBlocks = numRegisteredBlocks;
      return c;
    }
  }
}
