package sphinxserve.server.image;

/**
 * Sizes of the image pipeline.
 *
 * @param maxCacheBytes most bytes of embeddings the cache holds (Caffeine evicts by weight beyond)
 * @param limits limits checked before decoding
 * @param numDecodeThreads threads that decode and preprocess images
 * @param maxImageJobs most images being decoded, preprocessed or encoded at once; more are refused
 *     (RESOURCE_EXHAUSTED) so an image flood cannot starve the decoding engine
 * @param maxVisionBatch most images one vision-encoder call takes
 */
public record ImageCacheConfig(long maxCacheBytes, ImageLimits limits, int numDecodeThreads, int maxImageJobs, int maxVisionBatch) {

  public ImageCacheConfig {
    if (maxCacheBytes < 0 || numDecodeThreads < 1 || maxImageJobs < 1 || maxVisionBatch < 1) {
      throw new IllegalArgumentException("image cache: sizes must be positive");
    }
  }
}
