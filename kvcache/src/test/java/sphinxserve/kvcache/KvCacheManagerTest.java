package sphinxserve.kvcache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class KvCacheManagerTest {

  @RegisterExtension final KvFixture kv = new KvFixture();

  private static final PrefixKey TEXT = PrefixKey.of("bundle-a");

  private static int[] tokens(int n, int seed) {
    return IntStream.range(0, n).map(i -> (i * 31 + seed * 7) % 1000).toArray();
  }

  /** Writes K/V for tokens [computed, numTokens) of seqId and marks them computed. */
  private static void compute(KvCacheManager manager, KvCacheStorage storage, long seqId, PrefixKey key, int[] tokenIds, int numTokens) {
    int[] table = manager.blockTable(seqId);
    long[] contents = KvFixture.contents(key, tokenIds, numTokens);
    for (int p = manager.numComputedTokens(seqId); p < numTokens; p++) KvFixture.writeToken(storage, table, p, contents[p]);
    manager.markComputed(seqId, tokenIds, numTokens);
  }

  @Test
  void allocateSlots_whenLastBlockHasRoom_allocatesNoNewBlock() {
    KvCacheManager manager = kv.manager(16, 8);
    assertTrue(manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 17).ok());
    assertEquals(2, manager.blockTable(1).length);
    for (int i = 0; i < 15; i++) assertTrue(manager.allocateSlots(1, 1).ok());
    assertEquals(2, manager.blockTable(1).length);
    assertTrue(manager.allocateSlots(1, 1).ok());
    assertEquals(3, manager.blockTable(1).length);
    assertEquals(33, manager.numSlots(1));
  }

  @Test
  void allocateSlots_whenNotEnoughBlocks_returnsNotEnoughBlocksAndChangesNothing() {
    KvCacheManager manager = kv.manager(4, 4);
    assertTrue(manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 10).ok()); // 3 blocks
    KvCacheStats before = manager.stats();

    AllocationResult running = manager.allocateSlots(1, 7); // needs 2 more, 1 available
    assertEquals(new AllocationResult.NotEnoughBlocks(2, 1), running);
    AllocationResult fresh = manager.allocateSlots(2, TEXT, ComputedPrefix.NONE, 100);
    assertEquals(new AllocationResult.NotEnoughBlocks(25, 1), fresh);

    assertFalse(manager.contains(2));
    assertEquals(10, manager.numSlots(1));
    assertEquals(before, manager.stats());
  }

  @Test
  void free_twice_throwsDoubleFree() {
    KvCacheManager manager = kv.manager(4, 4);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 5);
    manager.free(1);
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> manager.free(1));
    assertTrue(e.getMessage().contains("double free"), e.getMessage());
  }

  @Test
  void blockTable_afterFree_throwsUseAfterFree() {
    KvCacheManager manager = kv.manager(4, 4);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 5);
    manager.free(1);
    assertThrows(IllegalStateException.class, () -> manager.blockTable(1));
    assertThrows(IllegalStateException.class, () -> manager.allocateSlots(1, 1));
    assertThrows(IllegalStateException.class, () -> manager.markComputed(1, tokens(5, 0), 5));
    assertThrows(IllegalStateException.class, () -> manager.fork(1, 2));
  }

  @Test
  void fork_sharesEveryBlockWithMatchingRefCounts() {
    KvCacheManager manager = kv.manager(4, 8);
    int[] prompt = tokens(10, 1);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 10);
    manager.markComputed(1, prompt, 10);
    KvCacheStats before = manager.stats();

    manager.fork(1, 2);
    manager.fork(1, 3);

    assertArrayEquals(manager.blockTable(1), manager.blockTable(2));
    for (int block : manager.blockTable(1)) assertEquals(3, manager.pool().refCount(block));
    assertEquals(before.numInUseBlocks(), manager.stats().numInUseBlocks());
  }

  @Test
  void fork_thenDivergentAppends_neverChangeOtherSequenceKv() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 16));
    KvCacheManager manager = kv.manager(storage, true);
    int[] parentTokens = Arrays.copyOf(tokens(6, 2), 20);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 6); // 1 full block + 2 slots of a shared partial block
    compute(manager, storage, 1, TEXT, parentTokens, 6);
    manager.fork(1, 2);
    int[] childTokens = parentTokens.clone();
    byte[][] childBefore = snapshot(storage, manager.blockTable(2), 6);

    // The parent diverges first: it must copy the shared partial block, not write into it.
    for (int p = 6; p < 15; p++) {
      parentTokens[p] = 500 + p;
      assertTrue(manager.allocateSlots(1, 1).ok());
      compute(manager, storage, 1, TEXT, parentTokens, p + 1);
    }
    assertNotEquals(manager.blockTable(1)[1], manager.blockTable(2)[1]);
    assertArrayEquals2(childBefore, snapshot(storage, manager.blockTable(2), 6));

    // Now the child appends, into its own (no longer shared) block; the parent's K/V stays as written.
    byte[][] parentBefore = snapshot(storage, manager.blockTable(1), 15);
    for (int p = 6; p < 15; p++) {
      childTokens[p] = 700 + p;
      assertTrue(manager.allocateSlots(2, 1).ok());
      compute(manager, storage, 2, TEXT, childTokens, p + 1);
    }
    assertArrayEquals2(parentBefore, snapshot(storage, manager.blockTable(1), 15));
    assertArrayEquals2(expected(storage, TEXT, childTokens, 15), snapshot(storage, manager.blockTable(2), 15));
    assertArrayEquals2(expected(storage, TEXT, parentTokens, 15), snapshot(storage, manager.blockTable(1), 15));
  }

  @Test
  void fork_withUncomputedSlots_throws() {
    KvCacheManager manager = kv.manager(4, 8);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 6);
    assertThrows(IllegalStateException.class, () -> manager.fork(1, 2));
    assertFalse(manager.contains(2));
  }

  @Test
  void computedPrefix_afterFree_hitsCachedBlocksWithTheirKv() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 16));
    KvCacheManager manager = kv.manager(storage, true);
    int[] prompt = tokens(14, 3);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 14);
    compute(manager, storage, 1, TEXT, prompt, 14);
    manager.free(1);
    assertEquals(3, manager.stats().numCachedBlocks());

    int[] next = Arrays.copyOf(prompt, 20);
    next[13] = 9; // the fourth block differs; the first three hit
    ComputedPrefix prefix = manager.computedPrefix(TEXT, next, 20);

    assertEquals(12, prefix.numTokens());
    assertTrue(manager.allocateSlots(2, TEXT, prefix, 8).ok());
    assertEquals(12, manager.numComputedTokens(2));
    assertEquals(0, manager.stats().numCachedBlocks());
    int[] table = manager.blockTable(2);
    byte[][] expected = expected(storage, TEXT, prompt, 12);
    for (int i = 0; i < 3; i++) assertArrayEquals(expected[i], storage.blockBytes(table[i], 4));
    KvCacheStats stats = manager.stats();
    assertEquals(1, stats.numPrefixLookups());
    assertEquals(20, stats.numPrefixQueryTokens());
    assertEquals(12, stats.numPrefixHitTokens());
  }

  @Test
  void computedPrefix_whenWholePromptCached_leavesLastTokenToCompute() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 16));
    KvCacheManager manager = kv.manager(storage, true);
    int[] prompt = tokens(8, 4);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 8);
    compute(manager, storage, 1, TEXT, prompt, 8);
    assertEquals(4, manager.computedPrefix(TEXT, prompt, 8).numTokens());
    assertEquals(8, manager.computedPrefix(TEXT, Arrays.copyOf(prompt, 9), 9).numTokens());
  }

  @Test
  void computedPrefix_twoImagesWithIdenticalPlaceholderIds_neverShareBlock() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 32));
    KvCacheManager manager = kv.manager(storage, true);
    int[] prompt = new int[24];
    prompt[0] = 1; // BOS
    Arrays.fill(prompt, 1, 21, 32000); // image placeholders
    prompt[21] = 5;
    prompt[22] = 6;
    prompt[23] = 7;
    PrefixKey imageA = PrefixKey.of("bundle-a", null, List.of(new ImageSpan("a".repeat(64), 1, 21)));
    PrefixKey imageB = PrefixKey.of("bundle-a", null, List.of(new ImageSpan("b".repeat(64), 1, 21)));
    manager.allocateSlots(1, imageA, ComputedPrefix.NONE, 24);
    compute(manager, storage, 1, imageA, prompt, 24);

    ComputedPrefix prefix = manager.computedPrefix(imageB, prompt, 24);
    assertEquals(0, prefix.numTokens());
    manager.allocateSlots(2, imageB, prefix, 24);
    compute(manager, storage, 2, imageB, prompt, 24);
    int[] tableA = manager.blockTable(1);
    int[] tableB = manager.blockTable(2);
    for (int a : tableA) for (int b : tableB) assertNotEquals(a, b);
    // The same image at the same positions does hit.
    assertEquals(20, manager.computedPrefix(imageA, prompt, 24).numTokens());
  }

  @Test
  void computedPrefix_otherBundleOrSalt_misses() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 16));
    KvCacheManager manager = kv.manager(storage, true);
    int[] prompt = tokens(9, 5);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 9);
    compute(manager, storage, 1, TEXT, prompt, 9);
    assertEquals(8, manager.computedPrefix(TEXT, prompt, 9).numTokens());
    assertEquals(0, manager.computedPrefix(PrefixKey.of("bundle-b"), prompt, 9).numTokens());
    assertEquals(0, manager.computedPrefix(PrefixKey.of("bundle-a", "tenant-1", List.of()), prompt, 9).numTokens());
  }

  @Test
  void computedPrefix_prefixCachingDisabled_alwaysMisses() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 16));
    KvCacheManager manager = kv.manager(storage, false);
    int[] prompt = tokens(9, 5);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 9);
    compute(manager, storage, 1, TEXT, prompt, 9);
    manager.free(1);
    assertEquals(0, manager.computedPrefix(TEXT, prompt, 9).numTokens());
    assertEquals(0, manager.stats().numCachedBlocks());
  }

  @Test
  void allocateSlots_whenFreeListEmpty_evictsLeastRecentlyFreedFirst() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 4));
    KvCacheManager manager = kv.manager(storage, true);
    int[] first = tokens(4, 10);
    int[] second = tokens(4, 11);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 4);
    compute(manager, storage, 1, TEXT, first, 4);
    manager.allocateSlots(2, TEXT, ComputedPrefix.NONE, 4);
    compute(manager, storage, 2, TEXT, second, 4);
    manager.free(1);
    manager.free(2);
    assertEquals(2, manager.stats().numCachedBlocks());

    assertTrue(manager.allocateSlots(3, TEXT, ComputedPrefix.NONE, 12).ok()); // 2 free blocks + 1 eviction

    assertEquals(1, manager.stats().numEvictions());
    assertEquals(0, manager.computedPrefix(TEXT, Arrays.copyOf(first, 5), 5).numTokens());
    assertEquals(4, manager.computedPrefix(TEXT, Arrays.copyOf(second, 5), 5).numTokens());
  }

  @Test
  void allocateSlots_prefixBlocksCached_doesNotCountThemAsAvailable() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 3));
    KvCacheManager manager = kv.manager(storage, true);
    int[] prompt = tokens(9, 12);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 9);
    compute(manager, storage, 1, TEXT, prompt, 9);
    manager.free(1); // 2 cached + 1 free
    int[] longer = Arrays.copyOf(prompt, 17);
    ComputedPrefix prefix = manager.computedPrefix(TEXT, longer, 17);
    assertEquals(8, prefix.numTokens());
    // 17 tokens need 5 blocks: 2 revived + 3 new, but only 1 is left once the prefix is taken.
    assertEquals(new AllocationResult.NotEnoughBlocks(3, 1), manager.allocateSlots(2, TEXT, prefix, 9));
    assertEquals(2, manager.stats().numCachedBlocks());
    assertTrue(manager.allocateSlots(2, TEXT, prefix, 4).ok());
  }

  @Test
  void allocateSlots_prefixEvictedSinceLookup_throwsStale() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 4));
    KvCacheManager manager = kv.manager(storage, true);
    int[] prompt = tokens(5, 13);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 5);
    compute(manager, storage, 1, TEXT, prompt, 5);
    manager.free(1);
    ComputedPrefix prefix = manager.computedPrefix(TEXT, prompt, 5);
    assertEquals(1, manager.evictCachedBlocks(10));
    assertThrows(IllegalStateException.class, () -> manager.allocateSlots(2, TEXT, prefix, 1));
    assertFalse(manager.contains(2));
  }

  @Test
  void stats_countsBlocksAndEmptySlots() {
    KvCacheManager manager = kv.manager(16, 10);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 20); // 2 blocks, 12 empty slots
    manager.allocateSlots(2, TEXT, ComputedPrefix.NONE, 16); // 1 block, full
    KvCacheStats stats = manager.stats();
    assertEquals(10, stats.numBlocks());
    assertEquals(7, stats.numFreeBlocks());
    assertEquals(3, stats.numInUseBlocks());
    assertEquals(0.3, stats.usage(), 1e-9);
    assertEquals(12, stats.numEmptySlots());
    assertEquals(12.0 / 48, stats.fragmentation(), 1e-9);
    manager.free(1);
    assertEquals(0, manager.stats().numEmptySlots());
  }

  @Test
  void stats_fromAnotherThread_readsWithoutAssertion() throws Exception {
    KvCacheManager manager = kv.manager(16, 10);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 20);
    AtomicReference<KvCacheStats> seen = new AtomicReference<>();
    Thread reader = Thread.ofPlatform().start(() -> seen.set(manager.stats()));
    reader.join();
    assertEquals(2, seen.get().numInUseBlocks());
  }

  @Test
  void allocateSlots_fromAnotherThread_failsConfinementAssertion() throws Exception {
    KvCacheManager manager = kv.manager(16, 10);
    manager.allocateSlots(1, TEXT, ComputedPrefix.NONE, 20);
    AtomicReference<Throwable> failure = new AtomicReference<>();
    Thread other = Thread.ofPlatform().start(() -> {
      try {
        manager.allocateSlots(1, 1);
      } catch (Throwable t) {
        failure.set(t);
      }
    });
    other.join();
    assertInstanceOf(AssertionError.class, failure.get(), "tests run with -ea");
    assertEquals(20, manager.numSlots(1));
  }

  private static byte[][] snapshot(KvCacheStorage storage, int[] table, int numTokens) {
    int bs = storage.layout().blockSize();
    byte[][] out = new byte[Math.ceilDiv(numTokens, bs)][];
    for (int i = 0; i < out.length; i++) out[i] = storage.blockBytes(table[i], Math.min(bs, numTokens - i * bs));
    return out;
  }

  private byte[][] expected(KvCacheStorage storage, PrefixKey key, int[] tokenIds, int numTokens) {
    KvCacheStorage scratch = kv.storage(KvFixture.layout(storage.layout().blockSize(), 1));
    long[] contents = KvFixture.contents(key, tokenIds, numTokens);
    int bs = storage.layout().blockSize();
    byte[][] out = new byte[Math.ceilDiv(numTokens, bs)][];
    for (int i = 0; i < out.length; i++) out[i] = KvFixture.expectedBlockBytes(scratch, contents, i * bs, Math.min(bs, numTokens - i * bs));
    return out;
  }

  private static void assertArrayEquals2(byte[][] expected, byte[][] actual) {
    assertEquals(expected.length, actual.length);
    for (int i = 0; i < expected.length; i++) assertArrayEquals(expected[i], actual[i], "block " + i);
  }
}
