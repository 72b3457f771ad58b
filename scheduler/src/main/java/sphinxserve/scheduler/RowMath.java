package sphinxserve.scheduler;

/**
 * The O(vocabulary) loops of sampling, over one logits row: the only code that touches every token, so the
 * only code worth vectorising. Two implementations, {@link ScalarRowMath} and {@link VectorRowMath}; the
 * JMH benchmark {@code SamplerBenchmark} compares them and {@link #preferred()} returns the faster one.
 *
 * <p>Rows must be free of NaN; {@code -Infinity} marks a masked token and gets weight 0.
 */
sealed interface RowMath permits ScalarRowMath, VectorRowMath {

  /**
   * The implementation the sampler uses by default: the Vector API one (measured faster; docs/PERFORMANCE.md)
   * when the JVM resolved {@code jdk.incubator.vector} ({@code --add-modules jdk.incubator.vector}), else the
   * scalar one, so that an embedding application without the flag still works, only slower.
   */
  static RowMath preferred() {
    return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent() ? VectorRowMath.INSTANCE : ScalarRowMath.INSTANCE;
  }

  /** Whether every {@code x[i]}, {@code i < n}, is below {@code +Infinity}: no NaN and no {@code +Infinity}. */
  boolean allBelowInfinity(float[] x, int n);

  /** Largest of {@code x[0, n)}. */
  float max(float[] x, int n);

  /** Lowest index {@code i < n} with {@code x[i] == value}, or -1. */
  int indexOf(float[] x, int n, float value);

  /** Writes {@code w[i] = exp((x[i] - shift) * scale)} for {@code i < n} and returns their sum. */
  float expShiftSum(float[] x, float[] w, int n, float shift, float scale);

  /** Sum of the {@code w[i]}, {@code i < n}, that are at least {@code threshold}. */
  float sumAtLeast(float[] w, int n, float threshold);

  /** Tokens per block of {@link #blockSums}. */
  int BLOCK = 256;

  /** Sets to 0 every {@code w[i]}, {@code i < n}, below {@code threshold}. */
  void zeroBelow(float[] w, int n, float threshold);

  /**
   * Writes the sum of each block of {@link #BLOCK} weights, {@code w[b * BLOCK, min((b + 1) * BLOCK, n))}, to
   * {@code sums[b]} and returns the number of blocks.
   */
  int blockSums(float[] w, int n, float[] sums);

  /** Writes {@code out[i] = min(floatToRawIntBits(w[i]) >>> shift, maxBucket)} for {@code i < n}. */
  void buckets(float[] w, int n, int shift, int maxBucket, int[] out);

  /** Writes the indices {@code i < n} with {@code b[i] == value} to {@code out}, ascending; returns how many. */
  int indicesOf(int[] b, int n, int value, int[] out);

  /** Writes the indices {@code i < n} with {@code b[i] >= value} to {@code out}, ascending; returns how many. */
  int indicesAtLeast(int[] b, int n, int value, int[] out);
}
