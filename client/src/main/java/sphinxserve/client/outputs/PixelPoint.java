package sphinxserve.client.outputs;

/**
 * A point in pixels of the original image (before the node padded it to a square), (0,0) top-left; lies in
 * {@code [0, width] × [0, height]}.
 *
 * @param x horizontal position
 * @param y vertical position
 */
public record PixelPoint(double x, double y) {}
