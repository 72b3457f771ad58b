package sphinxserve.kvcache;

/**
 * What {@link KvCacheManager#allocateSlots} did: either every requested slot was allocated, or none was and the
 * pool lacks blocks. Never a partial allocation.
 */
public sealed interface AllocationResult {

  /** Whether the slots were allocated. */
  boolean ok();

  /** The shared success value. */
  static AllocationResult allocated() {
    return Allocated.INSTANCE;
  }

  /** Every requested slot now has a place in the sequence's block table. */
  record Allocated() implements AllocationResult {
    static final Allocated INSTANCE = new Allocated();

    @Override
    public boolean ok() {
      return true;
    }
  }

  /**
   * Not enough blocks: nothing was allocated or changed. The scheduler frees blocks (preemption) or waits.
   *
   * @param numBlocksNeeded blocks the request needed from the pool (new blocks plus a copy-on-write copy)
   * @param numBlocksAvailable blocks the pool could hand out (free plus evictable cached ones)
   */
  record NotEnoughBlocks(int numBlocksNeeded, int numBlocksAvailable) implements AllocationResult {
    @Override
    public boolean ok() {
      return false;
    }
  }
}
