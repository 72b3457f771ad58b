package sphinxserve.server.image;

import java.time.Duration;

/**
 * Sizes of the image pipeline.
 *
 * @param maxCacheBytes most bytes of embeddings the cache holds (Caffeine evicts by weight beyond)
 * @param limits limits checked before decoding
 * @param numDecodeThreads threads that decode and preprocess images
 * @param maxImageJobs most images being decoded, preprocessed or encoded at once; more are refused
 *     (RESOURCE_EXHAUSTED) so an image flood cannot starve the decoding engine
 * @param maxVisionBatch most images one vision-encoder call takes
 * @param timeout longest one image's decode, preprocessing and encoding may take, queueing included; the
 *     image then fails with {@link ImageRejectedException.Kind#TIMED_OUT}
 */
public record ImageCacheConfig(long maxCacheBytes, ImageLimits limits, int numDecodeThreads, int maxImageJobs, int maxVisionBatch,
    Duration timeout) {

  public ImageCacheConfig {
    if (maxCacheBytes < 0 || numDecodeThreads < 1 || maxImageJobs < 1 || maxVisionBatch < 1) {
      throw new IllegalArgumentException("image cache: sizes must be positive");
    }
    if (timeout.isNegative() || timeout.isZero()) throw new IllegalArgumentException("image cache: timeout must be positive");
  }
}
