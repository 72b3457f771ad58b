package sphinxserve.client.outputs;

/**
 * A box in pixels of the original image (before the node padded it to a square), (0,0) top-left; edges lie in
 * {@code [0, width] × [0, height]}.
 *
 * @param x1 left edge
 * @param y1 top edge
 * @param x2 right edge
 * @param y2 bottom edge
 */
public record PixelBox(double x1, double y1, double x2, double y2) {}
