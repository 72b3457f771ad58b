package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NucleusHistogramTest {

  @Test
  void find_flatPeakedAndTieHeavyRows_matchesFullSortReference() {
    Random random = new Random(11);
    NucleusHistogram histogram = new NucleusHistogram(40_000);
    for (int trial = 0; trial < 120; trial++) {
      int n = 1 + random.nextInt(trial < 60 ? 4000 : 40_000);
      float[] logits = switch (trial % 3) {
        case 0 -> gaussianRow(random, n, 0.5f + random.nextFloat()); // flat
        case 1 -> peakedRow(random, n);
        default -> tieHeavyRow(random, n);
      };
      float scale = 1f / (0.3f + 1.5f * random.nextFloat());
      float[] weights = weights(logits, scale);
      double total = 0;
      for (float w : weights) total += w;
      double topP = random.nextInt(8) == 0 ? 0.999 : 0.05 + 0.94 * random.nextDouble();
      double target = topP * total;

      histogram.find(logits, weights, n, target);
      Set<Integer> got = new HashSet<>();
      for (int id = 0; id < n; id++) {
        if (TopSelector.key(logits, id) <= histogram.thresholdKey()) got.add(id);
      }
      long[] order = sortedKeys(logits, n);
      int expected = 0;
      double mass = 0;
      while (mass < target && expected < n) mass += weights[(int) order[expected++]];
      String where = "trial " + trial + ", n " + n + ", top-p " + topP;
      assertTrue(Math.abs(got.size() - expected) <= 1, "kept " + got.size() + ", expected " + expected + "; " + where);
      Set<Integer> prefix = new HashSet<>();
      for (int r = 0; r < got.size(); r++) prefix.add((int) order[r]);
      assertEquals(prefix, got, where);

      // The form the sampler uses: weights of at least lowWeight(), less the dropped ids.
      Set<Integer> dropped = new HashSet<>();
      for (int k = 0; k < histogram.numDropped(); k++) dropped.add(histogram.droppedId(k));
      Set<Integer> masked = new HashSet<>();
      for (int id = 0; id < n; id++) {
        if (weights[id] >= histogram.lowWeight() && !dropped.contains(id)) masked.add(id);
      }
      assertEquals(got, masked, where);
    }
  }

  @Test
  void find_allLogitsEqual_keepsTheLowestIds() {
    int n = 10_000;
    float[] logits = new float[n];
    float[] weights = new float[n];
    Arrays.fill(weights, 1f);
    NucleusHistogram histogram = new NucleusHistogram(n);
    histogram.find(logits, weights, n, 0.25 * n);
    assertEquals(TopSelector.key(logits, n / 4 - 1), histogram.thresholdKey());
    assertEquals(n - n / 4, histogram.numDropped());
  }

  @Test
  void find_targetAboveTheTotal_keepsEverything() {
    float[] logits = {0f, -1f, Float.NEGATIVE_INFINITY};
    float[] weights = weights(logits, 1f);
    NucleusHistogram histogram = new NucleusHistogram(3);
    histogram.find(logits, weights, 3, 10.0);
    assertEquals(Long.MAX_VALUE, histogram.thresholdKey());
    assertEquals(0f, histogram.lowWeight());
    assertEquals(0, histogram.numDropped());
  }

  static float[] weights(float[] logits, float scale) {
    float max = Float.NEGATIVE_INFINITY;
    for (float x : logits) max = Math.max(max, x);
    float[] w = new float[logits.length];
    for (int i = 0; i < w.length; i++) w[i] = (float) Math.exp((logits[i] - max) * scale);
    return w;
  }

  /** Keys in ascending order: descending logit, lower id first on ties. */
  static long[] sortedKeys(float[] logits, int n) {
    long[] keys = new long[n];
    for (int id = 0; id < n; id++) keys[id] = TopSelector.key(logits, id);
    Arrays.sort(keys);
    return keys;
  }

  private static float[] gaussianRow(Random random, int n, float sigma) {
    float[] row = new float[n];
    for (int i = 0; i < n; i++) row[i] = (float) random.nextGaussian() * sigma;
    return row;
  }

  private static float[] peakedRow(Random random, int n) {
    float[] row = gaussianRow(random, n, 1.5f);
    for (int k = 0; k < 100; k++) row[random.nextInt(n)] += 10f - 0.1f * k;
    return row;
  }

  /** Few distinct logits (ties everywhere), some masked tokens, and -0.0 next to 0.0. */
  private static float[] tieHeavyRow(Random random, int n) {
    float[] row = new float[n];
    for (int i = 0; i < n; i++) {
      row[i] = switch (random.nextInt(6)) {
        case 0 -> Float.NEGATIVE_INFINITY;
        case 1 -> -0f;
        default -> random.nextInt(4) - 2;
      };
    }
    row[random.nextInt(n)] = 1f; // never all masked
    return row;
  }
}
