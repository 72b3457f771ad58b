package sphinxserve.server.image;

/**
 * Limits an image must meet before any pixel is decoded (decompression-bomb protection).
 *
 * @param maxImageBytes most encoded bytes
 * @param maxImagePixels most declared width × height
 * @param maxImageSide most pixels on either side; bounds the preprocessor's intermediate buffers, which
 *     grow with the shorter side of the padded square's resize pass
 */
public record ImageLimits(int maxImageBytes, long maxImagePixels, int maxImageSide) {

  /** 10 MiB, 36 megapixels, 16,384 pixels a side. */
  public static final ImageLimits DEFAULT = new ImageLimits(10 << 20, 36_000_000L, 16_384);

  public ImageLimits {
    if (maxImageBytes < 1 || maxImagePixels < 1 || maxImageSide < 1) {
      throw new IllegalArgumentException("image limits must be positive");
    }
  }
}
