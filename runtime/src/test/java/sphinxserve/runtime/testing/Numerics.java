package sphinxserve.runtime.testing;

/** Comparisons of float vectors for tests. */
public final class Numerics {

  private Numerics() {}

  /** {@code max|actual − expected| / max|expected|}: an error relative to the vector's scale. */
  public static double relativeError(float[] actual, float[] expected) {
    if (actual.length != expected.length) throw new IllegalArgumentException(actual.length + " vs " + expected.length + " values");
    double maxDiff = 0;
    double maxRef = 0;
    for (int i = 0; i < expected.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
      maxRef = Math.max(maxRef, Math.abs(expected[i]));
    }
    return maxDiff / maxRef;
  }
}
