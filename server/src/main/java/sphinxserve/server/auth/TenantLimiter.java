package sphinxserve.server.auth;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.ratelimiter.RateLimiterConfig;
import io.github.resilience4j.ratelimiter.internal.AtomicRateLimiter;
import java.time.Duration;

/**
 * One tenant's admission state: Resilience4j rate limiters for requests and generated tokens, and a bulkhead
 * for open Generate streams. Thread-safe (CAS inside Resilience4j); shared by every call of the tenant.
 *
 * <p>How the token rate works: tokens are charged as they are sent ({@link #chargeTokens}), borrowing from
 * future periods when the current one is spent (a reservation with an effectively unbounded timeout), so a
 * long answer is never cut off; a tenant in debt ({@code availablePermissions <= 0}) is refused new Generate
 * calls until the refill pays the debt back. The limit thus holds on average over any window longer than one
 * answer, and no stream in flight is disturbed. Requests are admitted against their own limiter, one permit
 * each, without waiting. The limiters are Resilience4j's {@code AtomicRateLimiter} (what {@code RateLimiter.of}
 * builds) used by its concrete type, because only its detailed metrics tell how long to wait: the
 * {@code retry-after-ms} hint.
 */
public final class TenantLimiter {

  /** How long a borrowed token reservation may reach into the future: effectively unbounded. */
  private static final Duration DEBT_HORIZON = Duration.ofDays(1);

  /** The retry-after hint for a full stream bulkhead: a stream's end cannot be predicted, so a short constant. */
  public static final long STREAM_RETRY_AFTER_MILLIS = 1000;

  private final Tenant tenant;
  private final AtomicRateLimiter requests;
  private final AtomicRateLimiter tokens;
  private final Bulkhead streams;

  public TenantLimiter(Tenant tenant) {
    this.tenant = tenant;
    TenantLimits l = tenant.limits();
    this.requests = l.requestsPerSecond() > 0 ? rateLimiter(tenant.name() + "-requests", l.requestsPerSecond(), Duration.ZERO) : null;
    this.tokens = l.tokensPerSecond() > 0 ? rateLimiter(tenant.name() + "-tokens", l.tokensPerSecond(), DEBT_HORIZON) : null;
    this.streams = l.maxStreams() > 0 ? Bulkhead.of(tenant.name() + "-streams", BulkheadConfig.custom()
        .maxConcurrentCalls(l.maxStreams()).maxWaitDuration(Duration.ZERO).build()) : null;
  }

  /**
   * A limiter granting {@code perSecond} permits a second: whole permits each second from 1/s up, one permit
   * every {@code 1 / perSecond} seconds below.
   */
  private static AtomicRateLimiter rateLimiter(String name, double perSecond, Duration timeout) {
    int limit = perSecond >= 1 ? (int) Math.min(Integer.MAX_VALUE, Math.round(perSecond)) : 1;
    Duration period = perSecond >= 1 ? Duration.ofSeconds(1) : Duration.ofNanos((long) (1e9 / perSecond));
    return new AtomicRateLimiter(name, RateLimiterConfig.custom().limitForPeriod(limit).limitRefreshPeriod(period)
        .timeoutDuration(timeout).build());
  }

  /**
   * A refusal.
   *
   * @param description the status description (names the tenant and the limit's attribute)
   * @param retryAfterMillis when a retry may succeed
   */
  public record Refusal(String description, long retryAfterMillis) {}

  /** Takes a request permit; a refusal when the tenant is over its request rate. */
  public Refusal admitRequest() {
    if (requests == null || requests.acquirePermission(1)) return null;
    long wait = millis(requests.getDetailedMetrics().getNanosToWait());
    return new Refusal("tenant " + tenant.name() + ": over " + fmt(tenant.limits().requestsPerSecond())
        + " requests per second (requests-per-second); retry after " + wait + " ms", wait);
  }

  /**
   * Admits a Generate stream: a refusal when the tenant owes generated tokens or has {@code max-streams} open;
   * otherwise the caller holds a stream permit and must {@link #streamEnded} once.
   */
  public Refusal admitStream() {
    if (tokens != null && tokens.getDetailedMetrics().getAvailablePermissions() <= 0) {
      long wait = millis(tokens.getDetailedMetrics().getNanosToWait());
      return new Refusal("tenant " + tenant.name() + ": over " + fmt(tenant.limits().tokensPerSecond())
          + " generated tokens per second (tokens-per-second); retry after " + wait + " ms", wait);
    }
    if (streams != null && !streams.tryAcquirePermission()) {
      return new Refusal("tenant " + tenant.name() + ": " + tenant.limits().maxStreams()
          + " Generate streams already open (max-streams); retry when one ends", STREAM_RETRY_AFTER_MILLIS);
    }
    return null;
  }

  /** Returns a stream permit taken by {@link #admitStream}. */
  public void streamEnded() {
    if (streams != null) streams.onComplete();
  }

  /** Charges {@code n} generated tokens (borrowing from later periods when this one is spent). */
  public void chargeTokens(int n) {
    if (tokens != null && n > 0) tokens.reservePermission(n);
  }

  private static long millis(long nanos) {
    return Math.max(1, (nanos + 999_999) / 1_000_000);
  }

  private static String fmt(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }
}
