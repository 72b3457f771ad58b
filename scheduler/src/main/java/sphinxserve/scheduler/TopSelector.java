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
   * Prefilter: a caller that expects to need about `expected` ranks gets only the tokens at or above a
   * threshold: the (4 * expected / 16 + 8)-th largest of every 16th logit, so about 4 * expected + 128
   * tokens pass. Every token left out is below every token kept, so ranks within the kept set are exact
   * ranks of the row; asking for more ranks than were kept reloads the whole row (also done at once when
   * the sample was unlucky and fewer than `expected` tokens passed).
   *
   * selectMass(weights, target) is the same quickselect steered by mass instead of rank (weighted
   * selection, expected O(numKeys)): after partitioning, recurse left if the left part's weight reaches
   * what is still missing, else take it whole and recurse right. It yields the top-p nucleus as a set
   * without sorting it; when the prefiltered keys together weigh less than the target it first reloads
   * the whole row (the one growth step).
   *
   * Invariant after ensureSorted(c): keys[0, sorted) are the `sorted` smallest keys in ascending order and
   * every key in keys[sorted, numKeys) is larger than all of them. Growing from s to c runs quickselect
   * (median-of-three Hoare partitioning, expected O(numKeys - s)) on keys[s, numKeys) to move the next
   * c - s smallest keys to keys[s, c), then sorts just that slice: O(numKeys + c log c) per growth step,
   * never a sort of the row.
   */

  /** Every this many tokens one is sampled to estimate the prefilter threshold. */
  static final int SAMPLE_STRIDE = 16;

  /** Below this row length (or when most of the row is wanted) the prefilter is skipped. */
  static final int MIN_PREFILTER_ROW = 4096;

  private final long[] keys;
  private final long[] sampleKeys;
  private float[] values;
  private int n;
  private int numKeys;
  private boolean complete;
  private int sorted;

  /** A selector for rows of up to {@code capacity} tokens. */
  TopSelector(int capacity) {
    this.keys = new long[capacity];
    this.sampleKeys = new long[capacity / SAMPLE_STRIDE + 1];
  }

  /** Loads {@code values[0, n)} as a new row, forgetting the previous one; the array must not change while in use. */
  void load(float[] values, int n) {
    this.values = values;
    this.n = n;
    loadAll();
  }

  /** Like {@link #load(float[], int)}, keeping only a prefiltered part sized for about {@code expected} ranks. */
  void load(float[] values, int n, int expected) {
    this.values = values;
    this.n = n;
    int numSamples = n / SAMPLE_STRIDE;
    int rank = 4 * expected / SAMPLE_STRIDE + 8;
    if (n < MIN_PREFILTER_ROW || rank >= numSamples / 2) {
      loadAll();
      return;
    }
    for (int s = 0; s < numSamples; s++) sampleKeys[s] = key(values, s * SAMPLE_STRIDE);
    select(sampleKeys, 0, numSamples - 1, rank);
    float threshold = values[(int) sampleKeys[rank]];
    int count = 0;
    for (int id = 0; id < n; id++) {
      if (values[id] >= threshold) keys[count++] = key(values, id);
    }
    if (count < expected) {
      loadAll();
      return;
    }
    numKeys = count;
    complete = false;
    sorted = 0;
  }

  private void loadAll() {
    for (int id = 0; id < n; id++) keys[id] = key(values, id);
    numKeys = n;
    complete = true;
    sorted = 0;
  }

  /** The selection key of token {@code id}: ascending keys are descending values, lower id first on ties. */
  static long key(float[] values, int id) {
    return ((long) ~sortable(values[id]) << 32) | id;
  }

  /** An int with the same order as {@code value} (-0.0 below 0.0). */
  static int sortable(float value) {
    int bits = Float.floatToRawIntBits(value);
    return bits ^ ((bits >> 31) & 0x7fffffff);
  }

  /** Makes ranks {@code [0, min(c, n))} available in descending logit order; returns how many are. */
  int ensureSorted(int c) {
    int target = Math.min(c, n);
    if (target > numKeys && !complete) loadAll();
    if (target > sorted) {
      if (target < numKeys) select(keys, sorted, numKeys - 1, target - 1);
      Arrays.sort(keys, sorted, target);
      sorted = target;
    }
    return target;
  }

  /**
   * Moves the {@code r} most likely tokens to ranks {@code [0, r)}, for the smallest {@code r} whose
   * {@code weights[id]} sum reaches {@code target} (every token when none does), in an arbitrary but
   * deterministic order; returns {@code r}. Reloads the whole row when the prefiltered part is too light.
   */
  int selectMass(float[] weights, double target) {
    if (!complete) {
      double loaded = 0;
      for (int k = 0; k < numKeys; k++) loaded += weights[(int) keys[k]];
      if (loaded < target) loadAll();
    }
    sorted = 0; // the prefix is selected, not sorted
    return selectMass(keys, numKeys, weights, target);
  }

  /**
   * Moves the smallest keys of {@code keys[0, numKeys)} to the front, for the smallest count {@code r} whose
   * {@code weights[(int) key]} sum reaches {@code target} (all of them when none does); returns {@code r}.
   * Expected O(numKeys); the keys must be distinct.
   */
  static int selectMass(long[] keys, int numKeys, float[] weights, double target) {
    if (numKeys == 0) return 0;
    int lo = 0;
    int hi = numKeys - 1;
    double mass = 0; // of ranks [0, lo)
    while (lo < hi) {
      long bounds = partition(keys, lo, hi);
      int j = (int) (bounds >> 32);
      int i = (int) bounds;
      double left = 0;
      for (int k = lo; k <= j; k++) left += weights[(int) keys[k]];
      if (mass + left >= target) {
        hi = j;
        continue;
      }
      mass += left;
      if (j + 1 < i) { // the pivot, alone between the parts
        mass += weights[(int) keys[j + 1]];
        if (mass >= target) return j + 2;
      }
      if (i > hi) return hi + 1;
      lo = i;
    }
    return Math.min(lo + 1, numKeys);
  }

  /** Token id at rank {@code rank} (0 = most likely); valid for ranks below the last {@link #ensureSorted}. */
  int id(int rank) {
    return (int) keys[rank];
  }

  /** Rearranges a[lo, hi] so that a[k] is the one a sort would put there, smaller ones before it. */
  private static void select(long[] a, int lo, int hi, int k) {
    while (hi > lo) {
      long bounds = partition(a, lo, hi);
      int j = (int) (bounds >> 32);
      int i = (int) bounds;
      if (k <= j) {
        hi = j;
      } else if (k >= i) {
        lo = i;
      } else {
        return;
      }
    }
  }

  /**
   * Hoare partition of distinct keys a[lo, hi] (lo < hi) around a median-of-three pivot. Returns j and i
   * packed as (j << 32) | i: a[lo, j] are below the pivot or equal to it, a[i, hi] above or equal, and when
   * j + 1 < i the pivot itself sits alone at j + 1.
   */
  private static long partition(long[] a, int lo, int hi) {
    int mid = (lo + hi) >>> 1;
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[hi] < a[mid]) swap(a, hi, mid);
    long pivot = a[mid];
    int i = lo;
    int j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    return ((long) j << 32) | i;
  }

  private static void swap(long[] a, int x, int y) {
    long t = a[x];
    a[x] = a[y];
    a[y] = t;
  }
}
