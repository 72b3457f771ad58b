package sphinxserve.scheduler;

import jdk.incubator.vector.FloatVector;
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

  private VectorRowMath() {}

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
}
