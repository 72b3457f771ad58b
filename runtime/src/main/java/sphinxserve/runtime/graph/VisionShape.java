package sphinxserve.runtime.graph;

/**
 * Hyper-parameters of the SPHINX-shaped vision encoder.
 *
 * @param viewSize side of one view in pixels
 * @param patchSize patch side of the ViT and of the conv branch's stem (the grid is {@code viewSize/patchSize})
 * @param vitWidth ViT channels
 * @param vitLayers ViT blocks
 * @param vitHeads ViT attention heads
 * @param convWidth conv branch channels
 * @param numQueries learned queries of the cross-attention (Q-Former-like) branch
 * @param hiddenSize output width (the decoder's hidden size)
 */
public record VisionShape(int viewSize, int patchSize, int vitWidth, int vitLayers, int vitHeads, int convWidth,
    int numQueries, int hiddenSize) {

  public VisionShape {
    if (viewSize % patchSize != 0) throw new IllegalArgumentException("viewSize must be a multiple of patchSize");
    if (vitWidth % vitHeads != 0) throw new IllegalArgumentException("vitWidth must be a multiple of vitHeads");
  }

  /** Patches per side. */
  public int patchGrid() {
    return viewSize / patchSize;
  }

  /** Tokens of the ViT/conv path: one class token plus the patches (257 for a 224 view with 14-pixel patches). */
  public int patchTokens() {
    return 1 + patchGrid() * patchGrid();
  }

  /** Embeddings per view: patch tokens, query tokens, and the start and end embeddings (291 for SPHINX). */
  public int tokensPerView() {
    return patchTokens() + numQueries + 2;
  }
}
