package sphinxserve.server.generate;

import dev.sphinxserve.proto.v1.SamplingParams;
import java.util.Optional;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.server.telemetry.RequestTelemetry;

/**
 * A Generate request after validation, prompt rendering and image encoding: everything the scheduler needs.
 *
 * <p>Prompt layout (SPHINX, DESIGN.md "One request, end to end" step 3):
 * <pre>
 *   index:  0     1 … T            T+1 …
 *           [BOS] [image × T]      tokens of system + turns + assistant prefix
 *                 ^ image.start()  (T = tokensPerImage; absent without an image, text then starts at 1)
 * </pre>
 * The image positions hold {@code SpecialTokens.imagePlaceholder()}; the runtime replaces their embeddings
 * with {@code image.embeddings()} rows in order.
 *
 * @param requestId the client's {@code request_id}, or one the node assigned
 * @param promptTokenIds the whole prompt, image placeholders included
 * @param image the image, when the conversation has one
 * @param sampling the validated sampling parameters as sent (zeros meaning "off" still zero)
 * @param maxNewTokens tokens to generate at most: {@code sampling.max_tokens}, or what the context leaves
 *     when that is 0; {@code promptTokenIds.length + maxNewTokens <= maxContextTokens}
 * @param priority higher runs first, −100..100
 * @param arrivalNanos {@link System#nanoTime()} when the call arrived
 * @param deadlineNanos {@link System#nanoTime()} by which the call must end; {@link Long#MAX_VALUE} if none
 * @param tenantSalt salts the prefix-cache block hashes with the tenant ({@code Tenant.tenantSalt}); null = shared
 * @param telemetry the call's spans and latency histograms; the backend reports the engine's phases to it
 * @param onPrefilled run once when the prompt has been computed (the first token), or when the request ends or is
 *     refused before that; on the engine thread, so it must only enqueue; null for none. Starts the other choices of
 *     a prompt once its blocks are in the prefix cache ({@code GenerateCalls#startChoices}).
 */
public record PreparedRequest(
    String requestId,
    int[] promptTokenIds,
    Optional<ImageInput> image,
    SamplingParams sampling,
    int maxNewTokens,
    int priority,
    long arrivalNanos,
    long deadlineNanos,
    String tenantSalt,
    RequestTelemetry telemetry,
    Runnable onPrefilled) {

  /**
   * The request's image.
   *
   * @param embeddings {@code tokensPerImage} rows; {@code embeddings.digest()} keys the prefix cache
   * @param start index of the first image position in the prompt (1: right after BOS)
   * @param cacheHit whether the embeddings came from the image cache (usage.image_cache_hit)
   */
  public record ImageInput(ImageEmbeddings embeddings, int start, boolean cacheHit) {

    /** The image's SHA-256, lower-case hex. */
    public String digest() {
      return embeddings.digest();
    }
  }

  /** This request with {@code onPrefilled} set. */
  public PreparedRequest withOnPrefilled(Runnable run) {
    return new PreparedRequest(requestId, promptTokenIds, image, sampling, maxNewTokens, priority, arrivalNanos, deadlineNanos,
        tenantSalt, telemetry, run);
  }

  /** Whether the request has a deadline. */
  public boolean hasDeadline() {
    return deadlineNanos != Long.MAX_VALUE;
  }
}
