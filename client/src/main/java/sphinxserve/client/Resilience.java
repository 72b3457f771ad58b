package sphinxserve.client;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.github.resilience4j.core.IntervalBiFunction;
import io.github.resilience4j.core.IntervalFunction;
import io.github.resilience4j.retry.Retry;
import io.github.resilience4j.retry.RetryConfig;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Set;

/**
 * Turns {@link RetrySettings} and {@link CircuitBreakerSettings} into Resilience4j objects and says which gRPC
 * outcomes count. Which attempts may be retried at all (none once a token arrived) is decided by the callers.
 */
final class Resilience {
  /** Codes that are retried: the node could not take the request, so sending it again is safe. */
  static final Set<Status.Code> RETRYABLE = Set.of(Status.Code.UNAVAILABLE, Status.Code.RESOURCE_EXHAUSTED);
  /** Codes that count as the target's failure for its circuit breaker; the rest are the request's business. */
  static final Set<Status.Code> TARGET_FAILURES = Set.of(Status.Code.UNAVAILABLE, Status.Code.RESOURCE_EXHAUSTED,
      Status.Code.INTERNAL, Status.Code.UNKNOWN);

  private Resilience() {}

  static boolean isRetryable(Throwable t) {
    return t instanceof StatusRuntimeException e && RETRYABLE.contains(e.getStatus().getCode())
        && !Endpoints.isCircuitOpen(e); // every breaker open: fail fast, that is the breaker's point
  }

  static boolean isTargetFailure(Throwable t) {
    return t instanceof StatusRuntimeException e && TARGET_FAILURES.contains(e.getStatus().getCode());
  }

  /**
   * The node's hint, on a refusal by a per-tenant limit, of when a retry may succeed (milliseconds, a trailer).
   */
  static final Metadata.Key<String> RETRY_AFTER = Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER);

  /** The node's {@code retry-after-ms} hint carried by {@code t}, or 0. */
  static long retryAfterMillis(Throwable t) {
    if (!(t instanceof StatusRuntimeException e) || e.getTrailers() == null) return 0;
    String hint = e.getTrailers().get(RETRY_AFTER);
    if (hint == null) return 0;
    try {
      return Math.max(0, Long.parseLong(hint.trim()));
    } catch (NumberFormatException ignored) {
      return 0;
    }
  }

  static Retry retry(String name, RetrySettings s) {
    IntervalFunction backoff = s.jitter() > 0
        ? IntervalFunction.ofExponentialRandomBackoff(s.initialBackoff(), s.multiplier(), s.jitter(), s.maxBackoff())
        : IntervalFunction.ofExponentialBackoff(s.initialBackoff(), s.multiplier(), s.maxBackoff());
    // The backoff, or the node's retry-after hint when that is longer (the call's deadline still bounds the wait).
    IntervalBiFunction<Object> wait = (attempt, outcome) -> Math.max(backoff.apply(attempt),
        outcome != null && outcome.isLeft() ? retryAfterMillis(outcome.getLeft()) : 0);
    RetryConfig config = RetryConfig.custom()
        .maxAttempts(s.maxAttempts())
        .intervalBiFunction(wait)
        .retryOnException(Resilience::isRetryable)
        .failAfterMaxAttempts(false)
        .build();
    return Retry.of(name, config);
  }

  static CircuitBreaker circuitBreaker(String target, CircuitBreakerSettings s) {
    CircuitBreakerConfig config = CircuitBreakerConfig.custom()
        .failureRateThreshold(s.failureRateThreshold())
        .slidingWindowType(CircuitBreakerConfig.SlidingWindowType.COUNT_BASED)
        .slidingWindowSize(s.slidingWindowSize())
        .minimumNumberOfCalls(s.minimumNumberOfCalls())
        .waitDurationInOpenState(s.waitInOpenState())
        .permittedNumberOfCallsInHalfOpenState(s.permittedCallsInHalfOpenState())
        .recordException(Resilience::isTargetFailure)
        .build();
    CircuitBreaker breaker = CircuitBreaker.of(target, config);
    if (!s.enabled()) {
      breaker.transitionToDisabledState();
    }
    return breaker;
  }
}
