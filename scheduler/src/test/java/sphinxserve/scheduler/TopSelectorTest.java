package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Comparator;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class TopSelectorTest {

  @Test
  void ensureSorted_growingPrefixWithOrWithoutPrefilter_matchesFullSortWithLowerIdFirstOnTies() {
    Random random = new Random(1);
    TopSelector selector = new TopSelector(40_000);
    for (int trial = 0; trial < 150; trial++) {
      int n = 1 + random.nextInt(trial < 100 ? 5000 : 40_000);
      float[] values = new float[n];
      for (int i = 0; i < n; i++) {
        values[i] = switch (random.nextInt(4)) {
          case 0 -> random.nextInt(5) - 2; // many ties, negatives and zero
          case 1 -> Float.NEGATIVE_INFINITY;
          default -> (float) random.nextGaussian() * 5;
        };
      }
      int[] expected = IntStream.range(0, n).boxed()
          .sorted(Comparator.<Integer>comparingDouble(i -> -values[i]).thenComparingInt(i -> i))
          .mapToInt(Integer::intValue).toArray();
      int c = 1 + random.nextInt(8);
      if (random.nextBoolean()) {
        selector.load(values, n);
      } else {
        selector.load(values, n, c);
      }
      int available = 0;
      while (available < n) {
        available = selector.ensureSorted(c);
        assertEquals(Math.min(c, n), available);
        for (int r = 0; r < available; r++) assertEquals(expected[r], selector.id(r), "rank " + r + " of " + n);
        c = c * 3 + 1;
      }
    }
  }

  @Test
  void selectMass_withOrWithoutPrefilter_isTheSmallestTopSetReachingTheTarget() {
    Random random = new Random(2);
    TopSelector selector = new TopSelector(40_000);
    for (int trial = 0; trial < 60; trial++) {
      int n = 1 + random.nextInt(trial < 30 ? 3000 : 40_000);
      float[] values = new float[n];
      float[] weights = new float[n];
      float spread = 0.2f + 4 * random.nextFloat(); // flat to peaked
      for (int i = 0; i < n; i++) values[i] = (float) random.nextGaussian() * spread;
      float max = Float.NEGATIVE_INFINITY;
      for (float v : values) max = Math.max(max, v);
      double total = 0;
      for (int i = 0; i < n; i++) total += weights[i] = (float) Math.exp(values[i] - max);
      int[] order = IntStream.range(0, n).boxed()
          .sorted(Comparator.<Integer>comparingDouble(i -> -values[i]).thenComparingInt(i -> i))
          .mapToInt(Integer::intValue).toArray();
      double target = total * (0.05 + 0.9 * random.nextDouble());
      int expected = 0;
      double mass = 0;
      while (mass < target) mass += weights[order[expected++]];

      if (random.nextBoolean()) {
        selector.load(values, n);
      } else {
        selector.load(values, n, 256);
      }
      int r = selector.selectMass(weights, target);
      assertTrue(Math.abs(r - expected) <= 1, "r " + r + " expected " + expected + " of " + n); // float sums
      Set<Integer> got = new HashSet<>();
      for (int k = 0; k < r; k++) got.add(selector.id(k));
      Set<Integer> want = new HashSet<>();
      for (int k = 0; k < r; k++) want.add(order[k]);
      assertEquals(want, got);
    }
  }
}
