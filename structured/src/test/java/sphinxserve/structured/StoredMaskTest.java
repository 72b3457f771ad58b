package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class StoredMaskTest {

  @Test
  void of_everyDensity_roundTripsAndIsSmallWhenSparseOrDense() {
    SplittableRandom random = new SplittableRandom(5);
    for (int size : new int[] {1, 63, 64, 65, 1000, 32_000, 128_003}) {
      for (double density : new double[] {0, 0.001, 0.3, 0.999, 1}) {
        long[] bits = new long[(size + 63) >>> 6];
        for (int id = 0; id < size; id++) {
          if (random.nextDouble() < density) bits[id >>> 6] |= 1L << id;
        }
        StoredMask stored = StoredMask.of(bits.clone(), size);
        long[] out = new long[bits.length];
        java.util.Arrays.fill(out, 0x1234_5678_9ABC_DEF0L);
        stored.copyTo(out);
        assertArrayEquals(bits, out, "size " + size + " density " + density);
        if (size >= 32_000 && (density < 0.01 || density > 0.99)) {
          assertTrue(stored.numBytes() < 8L * bits.length / 4, "compact: " + stored.numBytes() + " bytes");
        }
      }
    }
  }
}
