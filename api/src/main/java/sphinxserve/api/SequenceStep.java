package sphinxserve.api;

/**
 * One sequence's share of a decoder step: compute {@code tokenIds} at positions
 * {@code [startPosition, startPosition + tokenIds.length)}. A decode is a chunk of one token; a prefill
 * chunk is any length. Positions below {@code startPosition} are already in the KV cache.
 *
 * <pre>
 *  position:  0 ........ startPosition ............ startPosition+n-1
 *             [ cached KV ][ this step's tokens (written to KV now) ]
 *  block table: logical block i covers positions [i*blockSize, (i+1)*blockSize)
 * </pre>
 *
 * @param tokenIds the chunk's token ids; image positions hold the image placeholder id
 * @param startPosition position (and KV slot) of the chunk's first token
 * @param blockTable physical block ids of the sequence, logical order; must cover every position up to the
 *     chunk's end
 * @param image the sequence's image, or {@code null}; its rows replace the embeddings of positions
 *     {@code [imageStart, imageStart + image.numTokens())}
 * @param imageStart position of the first image token (ignored without an image)
 * @param wantLogits whether this step must return logits for the chunk's last token (true when the chunk
 *     ends the known tokens, i.e. the next token will be sampled)
 */
public record SequenceStep(int[] tokenIds, int startPosition, int[] blockTable, ImageEmbeddings image, int imageStart, boolean wantLogits) {

  public SequenceStep {
    if (tokenIds.length == 0) throw new IllegalArgumentException("a sequence step needs at least one token");
    if (startPosition < 0) throw new IllegalArgumentException("startPosition must be >= 0");
  }

  /** Tokens computed in this step. */
  public int numTokens() {
    return tokenIds.length;
  }

  /** Position after the chunk's last token: the sequence's KV length once this step ran. */
  public int endPosition() {
    return startPosition + tokenIds.length;
  }
}
