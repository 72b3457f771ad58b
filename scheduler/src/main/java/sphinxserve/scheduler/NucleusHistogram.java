package sphinxserve.scheduler;

import java.util.Arrays;

/**
 * Finds the top-p nucleus of a row by a histogram of its weights instead of a selection over the row: the
 * smallest set of most likely tokens (in {@link TopSelector#key} order: descending logit, lower id first on
 * ties) whose weights sum to at least a target. One instance per sampler; its scratch is reused every row.
 */
final class NucleusHistogram {
  /*
   * Weights are w = exp((x - max) * scale) in [0, 1], so the top 13 bits of a weight's float bits (sign 0,
   * the 8 exponent bits, 4 mantissa bits) are a bucket number that never decreases as the logit grows:
   * 2,033 buckets, 16 per octave. A vectorised pass writes each token's bucket; one scalar pass adds every
   * weight to its bucket (4 separate tables, so that neighbouring tokens rarely wait on the same running
   * sum); on a peaked row whose tokens of weight at least 2^-6 already reach the target (one vectorised
   * masked sum), only those are added. Walking down from the top bucket, the first bucket B where the mass
   * so far plus B's own reaches the target holds the nucleus' last token. Every token in a bucket above B
   * weighs more, so has a smaller key, than every token of B, and every token below B a larger one: the
   * nucleus is all of the buckets above B plus the smallest keys of B
   * (gathered by a vectorised scan of the bucket numbers), found by the weighted quickselect
   * (TopSelector.selectMass) on B's few tokens for the missing mass. O(V) plus O(|B|); no sort, no
   * selection over the row, whatever the shape of the row.
   *
   * Bucket masses are double sums in token order, not in rank order as a full sort would add them, so a
   * nucleus may differ from a full sort's by a token whose weight is within rounding of the target.
   * When no bucket above bucket 0 (zero and denormal weights) reaches the target, everything is kept.
   */

  /** Bits of a weight's float representation below the bucket number (16 buckets per octave). */
  static final int SHIFT = 19;

  /** Buckets: up to that of 1.0, the largest weight (a rounding excess above it stays in the top bucket). */
  static final int NUM_BUCKETS = (Float.floatToRawIntBits(1f) >>> SHIFT) + 1;

  private static final int WAYS = 4;

  private final RowMath math;
  /** The head a peaked row's nucleus is looked for in first: weights of at least 2^-6. */
  private static final float HEAD_WEIGHT = 0x1p-6f;

  private static final int HEAD_BUCKET = Float.floatToRawIntBits(HEAD_WEIGHT) >>> SHIFT;

  private final double[][] mass = new double[WAYS][NUM_BUCKETS];
  private final int[] buckets;
  private final int[] ids;
  private final long[] keys;
  private int numKeys;
  private int numKept;
  private float lowWeight;
  private long thresholdKey;

  /** A histogram for rows of up to {@code capacity} tokens, with the preferred row kernels. */
  NucleusHistogram(int capacity) {
    this(capacity, RowMath.preferred());
  }

  /** A histogram for rows of up to {@code capacity} tokens, using {@code math} for the full-row loops. */
  NucleusHistogram(int capacity, RowMath math) {
    this.math = math;
    this.buckets = new int[capacity];
    this.ids = new int[capacity];
    this.keys = new long[capacity];
  }

  /**
   * Finds the smallest set of most likely tokens of {@code logits[0, n)} whose {@code weights} (a
   * non-decreasing function of the logits, in [0, 1]) sum to at least {@code target}.
   */
  void find(float[] logits, float[] weights, int n, double target) {
    int[] bucket = buckets;
    math.buckets(weights, n, SHIFT, NUM_BUCKETS - 1, bucket);
    for (double[] m : mass) Arrays.fill(m, 0.0);
    double[] m0 = mass[0];
    double[] m1 = mass[1];
    double[] m2 = mass[2];
    double[] m3 = mass[3];
    // Peaked rows: when the tokens of at least HEAD_WEIGHT reach the target, the nucleus is among them.
    int numCandidates = math.sumAtLeast(weights, n, HEAD_WEIGHT) >= target
        ? math.indicesAtLeast(bucket, n, HEAD_BUCKET, ids)
        : n;
    boolean all = numCandidates == n;
    if (all) {
      int i = 0;
      for (; i + WAYS <= n; i += WAYS) {
        m0[bucket[i]] += weights[i];
        m1[bucket[i + 1]] += weights[i + 1];
        m2[bucket[i + 2]] += weights[i + 2];
        m3[bucket[i + 3]] += weights[i + 3];
      }
      for (; i < n; i++) m0[bucket[i]] += weights[i];
    } else {
      for (int k = 0; k < numCandidates; k++) m0[bucket[ids[k]]] += weights[ids[k]];
    }

    double above = 0;
    int floor = all ? 1 : HEAD_BUCKET;
    int b = NUM_BUCKETS - 1;
    for (; b >= floor; b--) {
      double inBucket = m0[b] + m1[b] + m2[b] + m3[b];
      if (above + inBucket >= target || (b == floor && !all)) break; // the head's lowest bucket, at worst
      above += inBucket;
    }
    if (b < floor) {
      numKeys = 0;
      numKept = 0;
      lowWeight = 0f;
      thresholdKey = Long.MAX_VALUE;
      return;
    }
    int count = 0;
    if (all) {
      count = math.indicesOf(bucket, n, b, ids);
      for (int k = 0; k < count; k++) keys[k] = TopSelector.key(logits, ids[k]);
    } else {
      for (int k = 0; k < numCandidates; k++) {
        if (bucket[ids[k]] == b) keys[count++] = TopSelector.key(logits, ids[k]);
      }
    }
    int kept = Math.max(1, TopSelector.selectMass(keys, count, weights, target - above));
    long last = keys[0];
    for (int k = 1; k < kept; k++) last = Math.max(last, keys[k]);
    numKeys = count;
    numKept = kept;
    lowWeight = Float.intBitsToFloat(b << SHIFT);
    thresholdKey = last;
  }

  /** Every token weighing less than this is outside the nucleus (0 when everything is kept). */
  float lowWeight() {
    return lowWeight;
  }

  /** Tokens of at least {@link #lowWeight()} that are still outside the nucleus (the rest of bucket B). */
  int numDropped() {
    return numKeys - numKept;
  }

  /** The {@code k}-th of the {@link #numDropped()} tokens. */
  int droppedId(int k) {
    return (int) keys[numKept + k];
  }

  /** The nucleus is the tokens whose {@link TopSelector#key} is at most this ({@code Long.MAX_VALUE}: all). */
  long thresholdKey() {
    return thresholdKey;
  }
}
