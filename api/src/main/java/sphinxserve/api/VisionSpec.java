package sphinxserve.api;

import java.util.Arrays;

/**
 * How an image becomes vision tokens (SPHINX "mixture of scales"): pad to a square with {@code padRgb},
 * resize to {@code imageSize}, normalise with {@code mean}/{@code std}, then one global view (the whole
 * image resized to {@code viewSize}) followed by a {@code grid × grid} tiling in row-major order.
 *
 * @param imageSize side of the padded, resized square (448 for SPHINX-1k)
 * @param grid tiles per side (2 for SPHINX-1k, 3 for SPHINX-2k)
 * @param viewSize side of every view fed to the encoder ({@code imageSize / grid})
 * @param tokensPerView embeddings the encoder emits per view, start/end embeddings included
 * @param padRgb the padding colour, 0–255 per channel
 * @param mean per-channel normalisation mean (on 0–1 values)
 * @param std per-channel normalisation standard deviation
 * @param globalViewResize how the global view is downsampled from the normalised square
 */
public record VisionSpec(int imageSize, int grid, int viewSize, int tokensPerView, int[] padRgb, float[] mean, float[] std,
    GlobalViewResize globalViewResize) {

  /** A spec whose global view is Pillow's bicubic (the project's own models). */
  public VisionSpec(int imageSize, int grid, int viewSize, int tokensPerView, int[] padRgb, float[] mean, float[] std) {
    this(imageSize, grid, viewSize, tokensPerView, padRgb, mean, std, GlobalViewResize.PILLOW_BICUBIC);
  }

  public VisionSpec {
    if (grid < 1 || viewSize < 1 || imageSize != grid * viewSize) {
      throw new IllegalArgumentException("vision: imageSize " + imageSize + " must equal grid " + grid + " × viewSize " + viewSize);
    }
    if (tokensPerView < 1) throw new IllegalArgumentException("vision: tokensPerView must be positive");
    if (padRgb.length != 3 || mean.length != 3 || std.length != 3) {
      throw new IllegalArgumentException("vision: padRgb, mean and std need 3 channels each");
    }
    java.util.Objects.requireNonNull(globalViewResize, "globalViewResize");
    padRgb = padRgb.clone();
    mean = mean.clone();
    std = std.clone();
  }

  /** Views per image: the global view plus the grid tiles. */
  public int numViews() {
    return 1 + grid * grid;
  }

  /** Image tokens one image occupies in the decoder's sequence. */
  public int tokensPerImage() {
    return numViews() * tokensPerView;
  }

  @Override public int[] padRgb() { return padRgb.clone(); }
  @Override public float[] mean() { return mean.clone(); }
  @Override public float[] std() { return std.clone(); }

  @Override
  public boolean equals(Object o) {
    return o instanceof VisionSpec v && imageSize == v.imageSize && grid == v.grid && viewSize == v.viewSize
        && tokensPerView == v.tokensPerView && Arrays.equals(padRgb, v.padRgb) && Arrays.equals(mean, v.mean)
        && Arrays.equals(std, v.std) && globalViewResize == v.globalViewResize;
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(new int[] {imageSize, grid, viewSize, tokensPerView, Arrays.hashCode(padRgb),
        Arrays.hashCode(mean), Arrays.hashCode(std), globalViewResize.ordinal()});
  }
}
