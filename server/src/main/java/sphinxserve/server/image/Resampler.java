package sphinxserve.server.image;

/**
 * Precomputed one-axis weights of Pillow's bicubic resize from {@code inSize} to {@code outSize} samples.
 *
 * <p>How (Pillow's {@code precompute_coeffs} in {@code Resample.c}): output sample {@code i} is centred at
 * {@code (i + 0.5) × scale} in input coordinates, {@code scale = inSize / outSize}. The kernel is Keys'
 * cubic convolution with {@code a = −0.5}, support 2. When downsampling, the kernel is stretched by the
 * scale (support {@code 2 × scale}) — Pillow's built-in antialiasing — so every input sample contributes;
 * upsampling uses the plain kernel. Taps outside the input are dropped and the rest renormalised to sum 1,
 * so edges are not darkened. A 2-D resize is two passes of these weights (separable), costing
 * {@code O(taps)} per output sample instead of {@code O(taps²)}.
 */
final class Resampler implements PlaneResize {

  /** Keys' parameter: −0.5 is Pillow's BICUBIC (PyTorch's bicubic uses −0.75). */
  static final double A = -0.5;

  /** The cubic kernel's support at scale 1. */
  private static final double SUPPORT = 2.0;

  final int inSize;
  final int outSize;
  /** First input index of output {@code i}'s taps. */
  final int[] first;
  /** Number of taps of output {@code i}. */
  final int[] numTaps;
  /** {@code weights[i * maxTaps + k]}: weight of input {@code first[i] + k}. */
  final double[] weights;
  final int maxTaps;

  Resampler(int inSize, int outSize) {
    if (inSize < 1 || outSize < 1) throw new IllegalArgumentException("sizes must be positive");
    this.inSize = inSize;
    this.outSize = outSize;
    double scale = (double) inSize / outSize;
    double filterScale = Math.max(scale, 1.0);
    double support = SUPPORT * filterScale;
    this.maxTaps = (int) Math.ceil(support) * 2 + 1;
    this.first = new int[outSize];
    this.numTaps = new int[outSize];
    this.weights = new double[outSize * maxTaps];
    for (int i = 0; i < outSize; i++) {
      double center = (i + 0.5) * scale;
      int min = Math.max((int) (center - support + 0.5), 0);
      int max = Math.min((int) (center + support + 0.5), inSize);
      int n = Math.min(max - min, maxTaps);
      double sum = 0;
      for (int k = 0; k < n; k++) {
        double w = cubic((min + k - center + 0.5) / filterScale);
        weights[i * maxTaps + k] = w;
        sum += w;
      }
      if (sum != 0) {
        for (int k = 0; k < n; k++) weights[i * maxTaps + k] /= sum;
      }
      first[i] = min;
      numTaps[i] = n;
    }
  }

  /** Keys' cubic convolution kernel with {@link #A}. */
  static double cubic(double x) {
    x = Math.abs(x);
    if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * A;
    return 0;
  }

  /**
   * Resamples one plane {@code src[inSize × inSize]} to {@code dst[outSize × outSize]} in float (no rounding),
   * horizontal pass then vertical.
   */
  @Override
  public void resizePlane(float[] src, float[] dst) {
    float[] tmp = new float[inSize * outSize];
    for (int y = 0; y < inSize; y++) {
      int row = y * inSize;
      for (int x = 0; x < outSize; x++) {
        double v = 0;
        int base = x * maxTaps;
        for (int k = 0, n = numTaps[x], f = first[x]; k < n; k++) v += weights[base + k] * src[row + f + k];
        tmp[y * outSize + x] = (float) v;
      }
    }
    for (int y = 0; y < outSize; y++) {
      int base = y * maxTaps;
      for (int x = 0; x < outSize; x++) {
        double v = 0;
        for (int k = 0, n = numTaps[y], f = first[y]; k < n; k++) v += weights[base + k] * tmp[(f + k) * outSize + x];
        dst[y * outSize + x] = (float) v;
      }
    }
  }
}
