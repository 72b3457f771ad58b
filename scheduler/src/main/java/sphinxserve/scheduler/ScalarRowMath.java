package sphinxserve.scheduler;

/** {@link RowMath} in plain Java loops; the reference the Vector API version is checked and measured against. */
final class ScalarRowMath implements RowMath {

  /** The only instance; stateless. */
  static final ScalarRowMath INSTANCE = new ScalarRowMath();

  private ScalarRowMath() {}

  @Override
  public boolean allBelowInfinity(float[] x, int n) {
    for (int i = 0; i < n; i++) {
      if (!(x[i] < Float.POSITIVE_INFINITY)) return false;
    }
    return true;
  }

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

  @Override
  public void zeroBelow(float[] w, int n, float threshold) {
    for (int i = 0; i < n; i++) {
      if (w[i] < threshold) w[i] = 0f;
    }
  }

  @Override
  public int blockSums(float[] w, int n, float[] sums) {
    int numBlocks = (n + BLOCK - 1) / BLOCK;
    for (int b = 0; b < numBlocks; b++) {
      int end = Math.min((b + 1) * BLOCK, n);
      float sum = 0;
      for (int i = b * BLOCK; i < end; i++) sum += w[i];
      sums[b] = sum;
    }
    return numBlocks;
  }

  @Override
  public void buckets(float[] w, int n, int shift, int maxBucket, int[] out) {
    for (int i = 0; i < n; i++) out[i] = Math.min(Float.floatToRawIntBits(w[i]) >>> shift, maxBucket);
  }

  @Override
  public int indicesOf(int[] b, int n, int value, int[] out) {
    int count = 0;
    for (int i = 0; i < n; i++) {
      if (b[i] == value) out[count++] = i;
    }
    return count;
  }

  @Override
  public int indicesAtLeast(int[] b, int n, int value, int[] out) {
    int count = 0;
    for (int i = 0; i < n; i++) {
      if (b[i] >= value) out[count++] = i;
    }
    return count;
  }
}
