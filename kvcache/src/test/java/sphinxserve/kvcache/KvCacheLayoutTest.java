package sphinxserve.kvcache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The pool geometry's sizes and its one-buffer-per-pool limit (nothing is allocated here). */
class KvCacheLayoutTest {

  @Test
  void bytesPerBlock_isEveryLayersKeysAndValuesForBlockSizeTokens() {
    // The bench preset: 8 layers, 2 KV heads of 64 floats, 16-token blocks = 128 KiB (docs/OPERATIONS.md).
    KvCacheLayout layout = new KvCacheLayout(8, 2, 64, 16, 10);
    assertEquals(128 << 10, layout.bytesPerBlock());
    assertEquals(10 * layout.bytesPerBlock(), layout.totalBytes());
  }

  @Test
  void maxNumBlocks_isTheLargestPoolOfAtMost2GiB() {
    KvCacheLayout one = new KvCacheLayout(8, 2, 64, 16, 1);
    int max = one.maxNumBlocks();
    assertEquals(Integer.MAX_VALUE / (2 * 16 * 64 * 4), max);
    KvCacheLayout largest = new KvCacheLayout(8, 2, 64, 16, max);
    assertTrue(largest.bytesPerPool() <= KvCacheLayout.MAX_POOL_BYTES);
    var e = assertThrows(IllegalArgumentException.class, () -> new KvCacheLayout(8, 2, 64, 16, max + 1));
    assertTrue(e.getMessage().contains("at most 2 GiB per pool"), e.getMessage());
  }
}
