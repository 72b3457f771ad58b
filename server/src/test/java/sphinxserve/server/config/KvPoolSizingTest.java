package sphinxserve.server.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import sphinxserve.kvcache.KvCacheLayout;
import sphinxserve.server.config.HostMemory;
import sphinxserve.server.config.KvCacheMemory;
import sphinxserve.server.config.KvPoolSizing;

/** The pool sizing arithmetic: budgets into blocks, the 2 GiB pool cap, the override, the refusals. */
final class KvPoolSizingTest {

  private static final long GIB = 1L << 30;
  private static final long MIB = 1L << 20;

  /** The bench preset's geometry: 8 layers, 2 KV heads of 64 floats, 16-token blocks = 128 KiB per block. */
  private static final KvCacheLayout BENCH = new KvCacheLayout(8, 2, 64, 16, 1);
  /** The bench preset's longest request: 4,096 tokens = 256 blocks = 32 MiB. */
  private static final int BENCH_CONTEXT = 4096;

  private static final HostMemory HOST = new HostMemory(24 * GIB, "physical memory", 6 * GIB);
  /** Enough running requests that their full contexts never cap these budgets (the cap has its own test). */
  private static final int RUNNING = 4096;

  @Test
  void choose_fraction_takesThatShareOfWhatHeapAndWeightsLeave() {
    KvPoolSizing s = KvPoolSizing.choose(0, KvCacheMemory.ofFraction(0.5), HOST, 2 * GIB, BENCH, BENCH_CONTEXT, RUNNING);
    // 0.5 × (24 − 6 − 2) GiB = 8 GiB = 65,536 blocks of 128 KiB.
    assertEquals(8 * GIB, s.budgetBytes());
    assertEquals(65_536, s.numBlocks());
    assertEquals(8 * GIB, s.poolBytes());
    assertEquals("kv-cache-memory", s.option());
    assertTrue(s.source().contains("physical memory"), s.source());
    assertEquals("", s.cap());
  }

  @Test
  void choose_fraction_isCappedAtWhatTheRunningRequestsCanHold_butBytesAreNot() {
    // 64 running × 256 blocks per 4,096-token request = 16,384 blocks (2 GiB), well under 0.5 × 16 GiB.
    KvPoolSizing fraction = KvPoolSizing.choose(0, KvCacheMemory.ofFraction(0.5), HOST, 2 * GIB, BENCH, BENCH_CONTEXT, 64);
    assertEquals(16_384, fraction.numBlocks());
    assertEquals(8 * GIB, fraction.budgetBytes());
    assertTrue(fraction.cap().contains("64 running requests"), fraction.cap());
    KvPoolSizing bytes = KvPoolSizing.choose(0, KvCacheMemory.ofBytes(4 * GIB), HOST, 2 * GIB, BENCH, BENCH_CONTEXT, 64);
    assertEquals(32_768, bytes.numBlocks(), "a budget in bytes is taken as asked");
    assertEquals("", bytes.cap());
  }

  @Test
  void choose_bytes_roundsDownToWholeBlocksAndIgnoresTheHost() {
    KvPoolSizing s = KvPoolSizing.choose(0, KvCacheMemory.ofBytes(100 * MIB + 5), HOST, 0, BENCH, BENCH_CONTEXT, RUNNING);
    assertEquals(800, s.numBlocks()); // 100 MiB ÷ 128 KiB
    assertEquals(100 * MIB, s.poolBytes());
    assertEquals(100 * MIB + 5, s.budgetBytes());
  }

  @Test
  void choose_kvBlocks_overridesTheBudget() {
    KvPoolSizing s = KvPoolSizing.choose(300, KvCacheMemory.ofBytes(4 * GIB), HOST, 0, BENCH, BENCH_CONTEXT, RUNNING);
    assertEquals(300, s.numBlocks());
    assertEquals(300L * 128 * 1024, s.poolBytes());
    assertEquals("kv-blocks", s.option());
    assertEquals(0, s.budgetBytes());
  }

  @Test
  void choose_budgetBeyondOnePool_isCutTo2GiBPerLayerPool() {
    // One layer's key pool per bench block: 2 heads × 16 tokens × 64 floats × 4 B = 8 KiB, so 2 GiB holds 262,143.
    KvPoolSizing s = KvPoolSizing.choose(0, KvCacheMemory.ofFraction(1.0), new HostMemory(512 * GIB, "cgroup x", 8 * GIB), 0, BENCH,
        BENCH_CONTEXT, RUNNING);
    assertEquals(BENCH.maxNumBlocks(), s.numBlocks());
    assertEquals(262_143, s.numBlocks());
    assertTrue(s.cap().contains("2 GiB"), s.cap());
    assertTrue(s.poolBytes() < s.budgetBytes());
  }

  @Test
  void choose_kvBlocksBeyondOnePool_isRefusedNamingTheOption() {
    var e = assertThrows(IllegalArgumentException.class,
        () -> KvPoolSizing.choose(262_144, KvCacheMemory.ofFraction(0.5), HOST, 0, BENCH, BENCH_CONTEXT, RUNNING));
    assertTrue(e.getMessage().startsWith("kv-blocks: 262144 blocks of 16 tokens are more than one pool holds for this model, 262143"),
        e.getMessage());
  }

  @Test
  void choose_poolBelowOneMaximumLengthRequest_isRefusedNamingTheOption() {
    // 256 blocks (32 MiB) hold one 4,096-token request; one block less does not.
    assertEquals(256, KvPoolSizing.choose(0, KvCacheMemory.ofBytes(32 * MIB), HOST, 0, BENCH, BENCH_CONTEXT, RUNNING).numBlocks());
    var bytes = assertThrows(IllegalArgumentException.class,
        () -> KvPoolSizing.choose(0, KvCacheMemory.ofBytes(32 * MIB - 1), HOST, 0, BENCH, BENCH_CONTEXT, RUNNING));
    assertTrue(bytes.getMessage().startsWith("kv-cache-memory: the KV pool would hold 255 blocks of 16 tokens"), bytes.getMessage());
    assertTrue(bytes.getMessage().contains("4096 context tokens needs 256 blocks (32.0 MiB); raise --kv-cache-memory"), bytes.getMessage());
    var blocks = assertThrows(IllegalArgumentException.class,
        () -> KvPoolSizing.choose(255, KvCacheMemory.ofFraction(0.5), HOST, 0, BENCH, BENCH_CONTEXT, RUNNING));
    assertTrue(blocks.getMessage().startsWith("kv-blocks: the KV pool would hold 255 blocks"), blocks.getMessage());
    var fraction = assertThrows(IllegalArgumentException.class, () -> KvPoolSizing.choose(0, KvCacheMemory.ofFraction(0.001),
        new HostMemory(16 * GIB, "cgroup /sys/fs/cgroup/memory.max", 4 * GIB), 0, BENCH, BENCH_CONTEXT, RUNNING));
    assertTrue(fraction.getMessage().contains("from 0.001 × (memory 16.0 GiB (cgroup /sys/fs/cgroup/memory.max) − heap max 4.0 GiB − model 0 B)"),
        fraction.getMessage());
  }

  @Test
  void choose_heapAndWeightsTakeEverything_isRefusedSayingWhatTookIt() {
    var e = assertThrows(IllegalArgumentException.class, () -> KvPoolSizing.choose(0, KvCacheMemory.ofFraction(0.5),
        new HostMemory(8 * GIB, "cgroup m", 6 * GIB), 2 * GIB, BENCH, BENCH_CONTEXT, RUNNING));
    assertTrue(e.getMessage().startsWith("kv-cache-memory: nothing is left for the KV cache: memory 8.0 GiB (cgroup m) − heap max 6.0 GiB − model 2.0 GiB"),
        e.getMessage());
  }

  @Test
  void bytes_readsAsBinaryUnits() {
    assertEquals("512 B", KvPoolSizing.bytes(512));
    assertEquals("128.0 KiB", KvPoolSizing.bytes(128 << 10));
    assertEquals("1.5 GiB", KvPoolSizing.bytes(3 * GIB / 2));
  }
}
