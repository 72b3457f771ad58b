package sphinxserve.server.image;

/**
 * PyTorch's {@code F.interpolate(x, size, mode="bicubic", align_corners=False)} on one square plane: what SPHINX
 * computes for its global view from the normalised 448 image.
 *
 * <p>How (ATen's {@code upsample_bicubic2d}): output sample {@code i} reads input coordinate
 * {@code (i + 0.5) × scale − 0.5} ({@code scale = in / out}, not clamped for cubic), taps at the four integers
 * around it with Keys' cubic convolution, {@code a = −0.75}, and indices past an edge clamped to it (the border
 * replicated). Unlike Pillow there is no antialiasing: downsampling by 2 reads only 4 of the 8 samples a
 * stretched kernel would. Separable, so one horizontal and one vertical pass of precomputed weights; the sums
 * are in double, so results equal PyTorch's float32 computation to about 1e-6.
 */
final class TorchBicubic implements PlaneResize {

  /** Keys' parameter of PyTorch's bicubic. */
  static final double A = -0.75;

  private final int inSize;
  private final int outSize;
  /** {@code index[4i + k]}: input sample of output i's tap k, clamped into the plane. */
  private final int[] index;
  /** {@code weight[4i + k]}: its weight. */
  private final double[] weight;

  TorchBicubic(int inSize, int outSize) {
    if (inSize < 1 || outSize < 1) throw new IllegalArgumentException("sizes must be positive");
    this.inSize = inSize;
    this.outSize = outSize;
    this.index = new int[4 * outSize];
    this.weight = new double[4 * outSize];
    double scale = (double) inSize / outSize;
    for (int i = 0; i < outSize; i++) {
      double real = (i + 0.5) * scale - 0.5;
      int floor = (int) Math.floor(real);
      double t = real - floor;
      double[] w = {far(t + 1), near(t), near(1 - t), far(2 - t)};
      for (int k = 0; k < 4; k++) {
        index[4 * i + k] = Math.min(Math.max(floor - 1 + k, 0), inSize - 1);
        weight[4 * i + k] = w[k];
      }
    }
  }

  /** Keys' kernel for |x| ≤ 1. */
  private static double near(double x) {
    return ((A + 2) * x - (A + 3)) * x * x + 1;
  }

  /** Keys' kernel for 1 < |x| < 2. */
  private static double far(double x) {
    return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  }

  @Override
  public void resizePlane(float[] src, float[] dst) {
    double[] rows = new double[inSize * outSize]; // horizontal pass: [inSize rows, outSize columns]
    for (int y = 0; y < inSize; y++) {
      int row = y * inSize;
      for (int x = 0; x < outSize; x++) {
        double v = 0;
        for (int k = 0; k < 4; k++) v += weight[4 * x + k] * src[row + index[4 * x + k]];
        rows[y * outSize + x] = v;
      }
    }
    for (int y = 0; y < outSize; y++) {
      for (int x = 0; x < outSize; x++) {
        double v = 0;
        for (int k = 0; k < 4; k++) v += weight[4 * y + k] * rows[index[4 * y + k] * outSize + x];
        dst[y * outSize + x] = (float) v;
      }
    }
  }
}
