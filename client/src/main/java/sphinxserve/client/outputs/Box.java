package sphinxserve.client.outputs;

/**
 * An axis-aligned box in SPHINX's normalised coordinates: fractions of the padded square image, (0,0) top-left.
 *
 * @param x1 left edge
 * @param y1 top edge
 * @param x2 right edge, at least {@code x1}
 * @param y2 bottom edge, at least {@code y1}
 */
public record Box(double x1, double y1, double x2, double y2) {}
