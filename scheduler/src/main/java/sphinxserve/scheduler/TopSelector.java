package sphinxserve.scheduler;

import java.util.Arrays;

/**
 * Finds the most likely tokens of a row without sorting the row: a sorted prefix of ranks that grows on
 * demand. Confined to the engine thread; one instance is reused for every row.
 */
final class TopSelector {
  /*
   * Each token becomes one long key, (~sortable(logit) << 32) | id, where sortable() maps a float's bits to
   * an int with the same order. Ascending key order is then descending logit order with ties broken by the
   * lower id, and all keys are distinct, so selection never degrades on repeated values and the result is
   * deterministic.
   *
   * Invariant after ensureSorted(c): keys[0, sorted) are the `sorted` smallest keys in ascending order and
   * every key in keys[sorted, n) is larger than all of them. Growing from s to c runs quickselect
   * (median-of-three Hoare partitioning, expected O(n - s)) on keys[s, n) to move the next c - s smallest
   * keys to keys[s, c), then sorts just that slice: O(n + c log c) per growth step, never a sort of the row.
   */

  private final long[] keys;
  private int n;
  private int sorted;

  /** A selector for rows of up to {@code capacity} tokens. */
  TopSelector(int capacity) {
    this.keys = new long[capacity];
  }

  /** Loads {@code values[0, n)} as a new row, forgetting the previous one. */
  void load(float[] values, int n) {
    for (int id = 0; id < n; id++) {
      int bits = Float.floatToRawIntBits(values[id]);
      int sortable = bits ^ ((bits >> 31) & 0x7fffffff);
      keys[id] = ((long) ~sortable << 32) | id;
    }
    this.n = n;
    this.sorted = 0;
  }

  /** Makes ranks {@code [0, min(c, n))} available in descending logit order; returns how many are. */
  int ensureSorted(int c) {
    int target = Math.min(c, n);
    if (target > sorted) {
      if (target < n) select(sorted, n - 1, target - 1);
      Arrays.sort(keys, sorted, target);
      sorted = target;
    }
    return target;
  }

  /** Token id at rank {@code rank} (0 = most likely); valid for ranks below the last {@link #ensureSorted}. */
  int id(int rank) {
    return (int) keys[rank];
  }

  /** Rearranges keys[lo, hi] so that keys[k] is the one a sort would put there, smaller ones before it. */
  private void select(int lo, int hi, int k) {
    while (hi > lo) {
      int mid = (lo + hi) >>> 1;
      // Median of three into keys[mid] as the pivot.
      if (keys[mid] < keys[lo]) swap(mid, lo);
      if (keys[hi] < keys[lo]) swap(hi, lo);
      if (keys[hi] < keys[mid]) swap(hi, mid);
      long pivot = keys[mid];
      int i = lo;
      int j = hi;
      while (i <= j) {
        while (keys[i] < pivot) i++;
        while (keys[j] > pivot) j--;
        if (i <= j) {
          swap(i, j);
          i++;
          j--;
        }
      }
      // Now keys[lo, j] <= pivot <= keys[i, hi] and j < i.
      if (k <= j) {
        hi = j;
      } else if (k >= i) {
        lo = i;
      } else {
        return;
      }
    }
  }

  private void swap(int a, int b) {
    long t = keys[a];
    keys[a] = keys[b];
    keys[b] = t;
  }
}
