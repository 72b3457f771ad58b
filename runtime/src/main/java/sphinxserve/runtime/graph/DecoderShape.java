package sphinxserve.runtime.graph;

/**
 * Hyper-parameters of the LLaMA decoder a bundle carries.
 *
 * @param vocabSize token embeddings and logits rows
 * @param hiddenSize model width
 * @param numLayers decoder layers
 * @param numHeads query heads
 * @param numKvHeads key/value heads (grouped-query attention: {@code numHeads % numKvHeads == 0})
 * @param headDim width of a head
 * @param intermediateSize SwiGLU width
 * @param maxContextTokens longest sequence; sizes the RoPE tables
 * @param ropeTheta RoPE base
 * @param rmsNormEps RMSNorm epsilon
 */
public record DecoderShape(int vocabSize, int hiddenSize, int numLayers, int numHeads, int numKvHeads, int headDim,
    int intermediateSize, int maxContextTokens, double ropeTheta, float rmsNormEps) {

  public DecoderShape {
    if (numHeads % numKvHeads != 0) throw new IllegalArgumentException("numHeads must be a multiple of numKvHeads");
    if (headDim % 2 != 0) throw new IllegalArgumentException("headDim must be even (RoPE rotates pairs)");
  }

  /** Query heads sharing one key/value head. */
  public int groupSize() {
    return numHeads / numKvHeads;
  }
}
