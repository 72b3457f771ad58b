package sphinxserve.scheduler;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowMath} with the JDK Vector API at the platform's preferred width (16 floats with AVX-512).
 *
 * <p>Reductions keep one accumulator vector and reduce its lanes once at the end, so the summation order
 * differs from {@link ScalarRowMath} (results agree to float rounding, not bit for bit); it is fixed for a
 * given machine, so seeded sampling stays reproducible there. {@code EXP} is compiled to the JDK's SVML
 * stubs on x86-64; on a platform without them it falls back to scalar lanes and the scalar class wins.
 */
final class VectorRowMath implements RowMath {

  /** The only instance; stateless. */
  static final VectorRowMath INSTANCE = new VectorRowMath();

  private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
  private static final VectorSpecies<Integer> INT_SPECIES = SPECIES.withLanes(int.class).check(int.class);

  private VectorRowMath() {}

  @Override
  public boolean allBelowInfinity(float[] x, int n) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    for (; i < bound; i += SPECIES.length()) {
      // LT is false for NaN, so one comparison catches both NaN and +Infinity.
      if (!FloatVector.fromArray(SPECIES, x, i).compare(VectorOperators.LT, Float.POSITIVE_INFINITY).allTrue()) return false;
    }
    for (; i < n; i++) {
      if (!(x[i] < Float.POSITIVE_INFINITY)) return false;
    }
    return true;
  }

  @Override
  public float max(float[] x, int n) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    FloatVector acc = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
    for (; i < bound; i += SPECIES.length()) {
      acc = acc.max(FloatVector.fromArray(SPECIES, x, i));
    }
    float m = acc.reduceLanes(VectorOperators.MAX);
    for (; i < n; i++) {
      if (x[i] > m) m = x[i];
    }
    return m;
  }

  @Override
  public int indexOf(float[] x, int n, float value) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    for (; i < bound; i += SPECIES.length()) {
      VectorMask<Float> eq = FloatVector.fromArray(SPECIES, x, i).compare(VectorOperators.EQ, value);
      if (eq.anyTrue()) return i + eq.firstTrue();
    }
    for (; i < n; i++) {
      if (x[i] == value) return i;
    }
    return -1;
  }

  @Override
  public float expShiftSum(float[] x, float[] w, int n, float shift, float scale) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    FloatVector acc = FloatVector.zero(SPECIES);
    for (; i < bound; i += SPECIES.length()) {
      FloatVector e = FloatVector.fromArray(SPECIES, x, i).sub(shift).mul(scale).lanewise(VectorOperators.EXP);
      e.intoArray(w, i);
      acc = acc.add(e);
    }
    float sum = acc.reduceLanes(VectorOperators.ADD);
    for (; i < n; i++) {
      float e = (float) Math.exp((x[i] - shift) * scale);
      w[i] = e;
      sum += e;
    }
    return sum;
  }

  @Override
  public float sumAtLeast(float[] w, int n, float threshold) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    FloatVector acc = FloatVector.zero(SPECIES);
    for (; i < bound; i += SPECIES.length()) {
      FloatVector v = FloatVector.fromArray(SPECIES, w, i);
      acc = acc.add(v, v.compare(VectorOperators.GE, threshold));
    }
    float sum = acc.reduceLanes(VectorOperators.ADD);
    for (; i < n; i++) {
      if (w[i] >= threshold) sum += w[i];
    }
    return sum;
  }

  @Override
  public void zeroBelow(float[] w, int n, float threshold) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    for (; i < bound; i += SPECIES.length()) {
      FloatVector v = FloatVector.fromArray(SPECIES, w, i);
      VectorMask<Float> below = v.compare(VectorOperators.LT, threshold);
      if (below.anyTrue()) v.blend(0f, below).intoArray(w, i);
    }
    for (; i < n; i++) {
      if (w[i] < threshold) w[i] = 0f;
    }
  }

  @Override
  public int blockSums(float[] w, int n, float[] sums) {
    int numBlocks = (n + BLOCK - 1) / BLOCK;
    int step = SPECIES.length();
    for (int b = 0; b < numBlocks; b++) {
      int start = b * BLOCK;
      int end = Math.min(start + BLOCK, n);
      int i = start;
      FloatVector acc0 = FloatVector.zero(SPECIES);
      FloatVector acc1 = FloatVector.zero(SPECIES);
      for (; i + 2 * step <= end; i += 2 * step) {
        acc0 = acc0.add(FloatVector.fromArray(SPECIES, w, i));
        acc1 = acc1.add(FloatVector.fromArray(SPECIES, w, i + step));
      }
      for (; i + step <= end; i += step) acc0 = acc0.add(FloatVector.fromArray(SPECIES, w, i));
      float sum = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
      for (; i < end; i++) sum += w[i];
      sums[b] = sum;
    }
    return numBlocks;
  }

  @Override
  public void buckets(float[] w, int n, int shift, int maxBucket, int[] out) {
    int i = 0;
    int bound = SPECIES.loopBound(n);
    for (; i < bound; i += SPECIES.length()) {
      ((IntVector) FloatVector.fromArray(SPECIES, w, i).reinterpretAsInts())
          .lanewise(VectorOperators.LSHR, shift).min(maxBucket).intoArray(out, i);
    }
    for (; i < n; i++) out[i] = Math.min(Float.floatToRawIntBits(w[i]) >>> shift, maxBucket);
  }

  // indicesOf and indicesAtLeast repeat one loop with a literal comparison each: the Vector API compiles
  // compare() to a single instruction only when the operator is a constant where it is called.

  @Override
  public int indicesOf(int[] b, int n, int value, int[] out) {
    int count = 0;
    int i = 0;
    int bound = INT_SPECIES.loopBound(n);
    for (; i < bound; i += INT_SPECIES.length()) {
      VectorMask<Integer> hit = IntVector.fromArray(INT_SPECIES, b, i).compare(VectorOperators.EQ, value);
      if (hit.anyTrue()) count = append(hit.toLong(), i, out, count);
    }
    for (; i < n; i++) {
      if (b[i] == value) out[count++] = i;
    }
    return count;
  }

  @Override
  public int indicesAtLeast(int[] b, int n, int value, int[] out) {
    int count = 0;
    int i = 0;
    int bound = INT_SPECIES.loopBound(n);
    for (; i < bound; i += INT_SPECIES.length()) {
      VectorMask<Integer> hit = IntVector.fromArray(INT_SPECIES, b, i).compare(VectorOperators.GE, value);
      if (hit.anyTrue()) count = append(hit.toLong(), i, out, count);
    }
    for (; i < n; i++) {
      if (b[i] >= value) out[count++] = i;
    }
    return count;
  }

  /** Appends {@code base} plus the index of each set bit of {@code bits} to {@code out[count, ...)}. */
  private static int append(long bits, int base, int[] out, int count) {
    for (; bits != 0; bits &= bits - 1) out[count++] = base + Long.numberOfTrailingZeros(bits);
    return count;
  }
}
