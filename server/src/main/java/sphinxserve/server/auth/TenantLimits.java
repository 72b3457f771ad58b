package sphinxserve.server.auth;

/**
 * One tenant's limits; 0 in any of them means "no limit".
 *
 * @param requestsPerSecond Generate and PutImage calls admitted per second (Resilience4j {@code RateLimiter})
 * @param tokensPerSecond tokens generated per second; a tenant in debt is refused new Generate calls until the
 *     debt is paid back (Resilience4j {@code RateLimiter} charged as tokens stream)
 * @param maxStreams Generate streams open at once (Resilience4j {@code Bulkhead})
 * @param maxTokens most {@code sampling.max_tokens}; 0 there becomes this cap instead of "the rest of the context"
 * @param maxImageBytes most encoded bytes of one image (on top of the node's {@code --max-image-bytes})
 */
public record TenantLimits(double requestsPerSecond, double tokensPerSecond, int maxStreams, int maxTokens, long maxImageBytes) {

  /** No limits beyond the node's own. */
  static final TenantLimits NONE = new TenantLimits(0, 0, 0, 0, 0);
}
