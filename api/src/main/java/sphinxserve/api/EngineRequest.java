package sphinxserve.api;

import java.util.Objects;

/**
 * A prepared generation request as the engine takes it: the prompt already rendered and tokenized, the
 * image already encoded.
 *
 * @param requestId unique among the engine's live requests; names the request in aborts and logs
 * @param promptTokenIds the prompt, BOS first; image positions hold the image placeholder id
 * @param image the image's embeddings, or null
 * @param imageStart position of the first image token (ignored without an image)
 * @param sampling decoding parameters
 * @param priority higher runs first; equal priorities in arrival order
 * @param deadlineNanos {@link System#nanoTime()} after which the request finishes with
 *     {@link FinishReason#DEADLINE}; {@link Long#MAX_VALUE} for none
 * @param tenantSalt isolates prefix-cache entries between tenants; null when sharing is allowed
 * @param sink where output goes
 */
public record EngineRequest(String requestId, int[] promptTokenIds, ImageEmbeddings image, int imageStart,
    SamplingParams sampling, int priority, long deadlineNanos, String tenantSalt, TokenSink sink) {

  public EngineRequest {
    Objects.requireNonNull(requestId, "requestId");
    Objects.requireNonNull(promptTokenIds, "promptTokenIds");
    Objects.requireNonNull(sampling, "sampling");
    Objects.requireNonNull(sink, "sink");
    if (promptTokenIds.length == 0) throw new IllegalArgumentException("prompt: at least one token (BOS)");
    if (image != null && (imageStart < 0 || imageStart + image.numTokens() > promptTokenIds.length)) {
      throw new IllegalArgumentException("image span [" + imageStart + ", " + (imageStart + image.numTokens()) + ") lies outside the prompt of " + promptTokenIds.length);
    }
  }

  /** Image positions in the prompt. */
  public int numImageTokens() {
    return image == null ? 0 : image.numTokens();
  }
}
