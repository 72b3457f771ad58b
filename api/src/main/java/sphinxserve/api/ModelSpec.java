package sphinxserve.api;

import java.util.List;

/**
 * Everything the scheduler and the server need to know about the served model, read from a bundle's
 * manifest. Immutable.
 *
 * @param bundleId identifies the bundle's exact weights (a content hash); part of every cache key
 * @param architecture the manifest's architecture name
 * @param vocabSize rows of the logits
 * @param hiddenSize width of the decoder and of the image embeddings
 * @param numLayers decoder layers
 * @param numHeads query heads
 * @param numKvHeads key/value heads (grouped-query attention when fewer than {@code numHeads})
 * @param headDim width of one head
 * @param maxContextTokens longest sequence (prompt, image and answer) the model supports
 * @param vision how images become tokens; null for a text-only model
 * @param template the conversation template
 * @param specialTokens ids with a fixed meaning
 * @param stopStrings strings that end an answer in addition to EOS (e.g. {@code "\n###"})
 */
public record ModelSpec(
    String bundleId,
    String architecture,
    int vocabSize,
    int hiddenSize,
    int numLayers,
    int numHeads,
    int numKvHeads,
    int headDim,
    int maxContextTokens,
    VisionSpec vision,
    ChatTemplate template,
    SpecialTokens specialTokens,
    List<String> stopStrings) {

  public ModelSpec {
    stopStrings = List.copyOf(stopStrings);
  }

  /** Whether the model takes images (a text-only model has no vision encoder). */
  public boolean acceptsImages() {
    return vision != null;
  }
}
