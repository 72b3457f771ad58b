package sphinxserve.kvcache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class BlockPoolTest {

  private BlockPool pool = new BlockPool(4, 2);

  @AfterEach
  void checkInvariants() {
    pool.checkInvariants();
  }

  private static BlockHash hash(int n) {
    byte[] bytes = new byte[BlockHash.BYTES];
    bytes[31] = (byte) n;
    bytes[0] = (byte) (n >> 8);
    return BlockHash.of(bytes, 0);
  }

  /** Allocates a full block and registers it under hash(n). */
  private int cachedCandidate(int n) {
    int block = pool.allocate();
    pool.setFilled(block, 2);
    assertTrue(pool.register(block, hash(n)));
    return block;
  }

  @Test
  void allocate_whenEmpty_returnsNoBlock() {
    for (int i = 0; i < 4; i++) pool.allocate();
    assertEquals(BlockPool.NO_BLOCK, pool.allocate());
    assertEquals(0, pool.numAvailable());
  }

  @Test
  void release_atZero_throwsDoubleFree() {
    int block = pool.allocate();
    pool.release(block);
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.release(block));
    assertTrue(e.getMessage().contains("double free"));
  }

  @Test
  void acquire_freeBlock_throwsUseAfterFree() {
    int block = pool.allocate();
    pool.release(block);
    assertThrows(IllegalStateException.class, () -> pool.acquire(block));
    assertThrows(IllegalStateException.class, () -> pool.setFilled(block, 1));
  }

  @Test
  void release_hashedBlock_keepsItCachedAndFindable() {
    int block = cachedCandidate(1);
    pool.release(block);
    assertEquals(1, pool.numCached());
    assertEquals(block, pool.cachedBlock(hash(1)));
    pool.acquire(block); // a hit revives it
    assertEquals(0, pool.numCached());
    assertEquals(1, pool.refCount(block));
  }

  @Test
  void allocate_prefersFreeListOverCachedBlocks() {
    int cached = cachedCandidate(1);
    pool.release(cached);
    for (int i = 0; i < 3; i++) assertTrue(pool.allocate() != cached);
    assertEquals(0, pool.numEvictions());
    assertEquals(cached, pool.allocate());
    assertEquals(1, pool.numEvictions());
    assertEquals(BlockPool.NO_BLOCK, pool.cachedBlock(hash(1)));
  }

  @Test
  void allocate_whenFreeListEmpty_evictsLeastRecentlyFreedFirst() {
    int[] blocks = {cachedCandidate(1), cachedCandidate(2), cachedCandidate(3), cachedCandidate(4)};
    pool.release(blocks[2]);
    pool.release(blocks[0]);
    pool.release(blocks[3]);
    pool.release(blocks[1]);
    pool.acquire(blocks[0]); // removed from the middle of the LRU
    assertArrayEquals(new int[] {blocks[2], blocks[3], blocks[1]}, pool.lruOrder());

    assertEquals(blocks[2], pool.allocate());
    assertEquals(blocks[3], pool.allocate());
    assertEquals(blocks[1], pool.allocate());
  }

  @Test
  void register_hashHeldByAnotherBlock_keepsTheFirst() {
    int first = cachedCandidate(7);
    int second = pool.allocate();
    pool.setFilled(second, 2);
    assertEquals(false, pool.register(second, hash(7)));
    assertEquals(first, pool.cachedBlock(hash(7)));
    pool.release(second);
    assertEquals(0, pool.numCached());
  }

  @Test
  void register_partialBlock_throws() {
    int block = pool.allocate();
    pool.setFilled(block, 1);
    assertThrows(IllegalStateException.class, () -> pool.register(block, hash(1)));
  }

  @Test
  void evictCached_referencedBlock_isNeverEvicted() {
    int held = cachedCandidate(1);
    int dropped = cachedCandidate(2);
    pool.release(dropped);
    assertEquals(1, pool.evictCached(10));
    assertEquals(held, pool.cachedBlock(hash(1)));
    assertEquals(BlockPool.NO_BLOCK, pool.cachedBlock(hash(2)));
  }
}
