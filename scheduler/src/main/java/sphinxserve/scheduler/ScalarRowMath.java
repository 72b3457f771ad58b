package sphinxserve.scheduler;

/** {@link RowMath} in plain Java loops; the reference the Vector API version is checked and measured against. */
final class ScalarRowMath implements RowMath {

  /** The only instance; stateless. */
  static final ScalarRowMath INSTANCE = new ScalarRowMath();

  private ScalarRowMath() {}

  @Override
  public float max(float[] x, int n) {
    float m = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      if (x[i] > m) m = x[i];
    }
    return m;
  }

  @Override
  public int indexOf(float[] x, int n, float value) {
    for (int i = 0; i < n; i++) {
      if (x[i] == value) return i;
    }
    return -1;
  }

  @Override
  public float expShiftSum(float[] x, float[] w, int n, float shift, float scale) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
      float e = (float) Math.exp((x[i] - shift) * scale);
      w[i] = e;
      sum += e;
    }
    return (float) sum;
  }

  @Override
  public float sumAtLeast(float[] w, int n, float threshold) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
      if (w[i] >= threshold) sum += w[i];
    }
    return (float) sum;
  }
}
