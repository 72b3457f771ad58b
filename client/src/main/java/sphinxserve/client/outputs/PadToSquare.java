package sphinxserve.client.outputs;

/**
 * Maps SPHINX's normalised coordinates back to pixels of the original image.
 *
 * <p>The node (like SPHINX's {@code expand2square}) pads a {@code w × h} image to a square of side
 * {@code s = max(w, h)}, centring it on the shorter side and filling with the CLIP mean colour (122,116,104). The
 * model's coordinates are fractions of that square, so
 *
 * <pre>
 *   pixel x = v × s − offsetX,   offsetX = (s − w) / 2   (integer division, as expand2square pastes)
 *   pixel y = v × s − offsetY,   offsetY = (s − h) / 2
 * </pre>
 *
 * and the result is clamped to the image ({@code [0, w]} and {@code [0, h]}): a box that reaches into the padding
 * ends at the image's edge.
 *
 * <pre>
 *   w = 400, h = 200, s = 400, offsetY = 100
 *   +----------------------+  y = 0     (padding)
 *   |//////////////////////|
 *   +----------------------+  y = 0.25 → pixel 0
 *   |        image         |
 *   +----------------------+  y = 0.75 → pixel 200
 *   |//////////////////////|
 *   +----------------------+  y = 1     (padding)
 * </pre>
 */
public final class PadToSquare {
  private final int width;
  private final int height;
  private final int side;

  private PadToSquare(int width, int height) {
    this.width = width;
    this.height = height;
    this.side = Math.max(width, height);
  }

  /**
   * The mapping for an original image of {@code width × height} pixels.
   *
   * @throws IllegalArgumentException if a side is not positive
   */
  public static PadToSquare of(int width, int height) {
    if (width <= 0 || height <= 0) {
      throw new IllegalArgumentException("image size must be positive, got " + width + "x" + height);
    }
    return new PadToSquare(width, height);
  }

  /** The original image's width in pixels. */
  public int width() {
    return width;
  }

  /** The original image's height in pixels. */
  public int height() {
    return height;
  }

  /** The padded square's side in pixels: {@code max(width, height)}. */
  public int side() {
    return side;
  }

  /** Padding columns left of the image. */
  public int offsetX() {
    return (side - width) / 2;
  }

  /** Padding rows above the image. */
  public int offsetY() {
    return (side - height) / 2;
  }

  /** A normalised x as a pixel column of the original image, clamped to {@code [0, width]}. */
  public double pixelX(double normalised) {
    return clamp(normalised * side - offsetX(), width);
  }

  /** A normalised y as a pixel row of the original image, clamped to {@code [0, height]}. */
  public double pixelY(double normalised) {
    return clamp(normalised * side - offsetY(), height);
  }

  /** A normalised box in pixels of the original image. */
  public PixelBox toPixels(Box box) {
    return new PixelBox(pixelX(box.x1()), pixelY(box.y1()), pixelX(box.x2()), pixelY(box.y2()));
  }

  /** A normalised point in pixels of the original image. */
  public PixelPoint toPixels(Point point) {
    return new PixelPoint(pixelX(point.x()), pixelY(point.y()));
  }

  /**
   * A pixel box of the original image in the model's normalised coordinates, the inverse of
   * {@link #toPixels(Box)}: for asking about a region ("the person in the region [0.56,0.21,0.73,0.72]").
   */
  public Box toNormalised(PixelBox box) {
    double s = side;
    return new Box((box.x1() + offsetX()) / s, (box.y1() + offsetY()) / s,
        (box.x2() + offsetX()) / s, (box.y2() + offsetY()) / s);
  }

  private static double clamp(double v, int max) {
    if (Double.isNaN(v)) {
      return 0;
    }
    return Math.max(0, Math.min(max, v));
  }

  @Override
  public String toString() {
    return "PadToSquare[" + width + "x" + height + " in " + side + "x" + side + ", offset " + offsetX() + ","
        + offsetY() + "]";
  }
}
