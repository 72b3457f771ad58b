package sphinxserve.client.outputs;

/**
 * A point in SPHINX's normalised coordinates: fractions of the padded square image, (0,0) top-left.
 *
 * @param x horizontal position
 * @param y vertical position
 */
public record Point(double x, double y) {}
