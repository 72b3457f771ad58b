package sphinxserve.api;

/**
 * The vision encoder's output for one image: {@code numTokens} rows of {@code hiddenSize} floats, views in
 * order (global first, then the grid tiles row-major), each view wrapped in its start/end embeddings.
 * Immutable once built: the array is never written after construction.
 *
 * @param digest SHA-256 of the image's encoded bytes, lower-case hex; part of prefix-cache keys
 * @param numTokens rows
 * @param hiddenSize floats per row
 * @param data row-major {@code [numTokens, hiddenSize]}
 */
public record ImageEmbeddings(String digest, int numTokens, int hiddenSize, float[] data) {

  public ImageEmbeddings {
    if ((long) numTokens * hiddenSize != data.length) {
      throw new IllegalArgumentException("image embeddings: " + data.length + " floats for " + numTokens + " × " + hiddenSize);
    }
  }

  /** Bytes held, for cache weighing. */
  public long sizeBytes() {
    return 4L * data.length;
  }
}
