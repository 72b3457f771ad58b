package sphinxserve.client;

import java.time.Duration;
import java.util.Objects;

/**
 * The circuit breaker kept per target. It counts the outcomes of the last {@code slidingWindowSize} calls; once at
 * least {@code minimumNumberOfCalls} were made and {@code failureRateThreshold} percent of them failed
 * ({@code UNAVAILABLE}, {@code RESOURCE_EXHAUSTED}, {@code INTERNAL} or {@code UNKNOWN}: the node's fault, not the
 * request's), the breaker opens and calls skip that target for {@code waitInOpenState}; then
 * {@code permittedCallsInHalfOpenState} trial calls decide whether it closes again.
 *
 * @param enabled                       false to never open
 * @param failureRateThreshold          percentage of failed calls that opens the breaker, in (0, 100]
 * @param slidingWindowSize             calls remembered
 * @param minimumNumberOfCalls          calls needed before the rate counts
 * @param waitInOpenState               how long an open breaker refuses calls
 * @param permittedCallsInHalfOpenState trial calls after the wait
 */
public record CircuitBreakerSettings(boolean enabled, float failureRateThreshold, int slidingWindowSize,
    int minimumNumberOfCalls, Duration waitInOpenState, int permittedCallsInHalfOpenState) {
  /** Checks the ranges. */
  public CircuitBreakerSettings {
    Objects.requireNonNull(waitInOpenState, "waitInOpenState");
    if (!(failureRateThreshold > 0 && failureRateThreshold <= 100)) {
      throw new IllegalArgumentException("failureRateThreshold must be in (0, 100], got " + failureRateThreshold);
    }
    if (slidingWindowSize < 1 || minimumNumberOfCalls < 1 || permittedCallsInHalfOpenState < 1) {
      throw new IllegalArgumentException("window, minimum calls and half-open calls must be at least 1");
    }
    if (waitInOpenState.isNegative() || waitInOpenState.isZero()) {
      throw new IllegalArgumentException("waitInOpenState must be positive");
    }
  }

  /** Opens at 50% failures over the last 20 calls (at least 10), for 10 s, then 2 trial calls. */
  public static CircuitBreakerSettings defaults() {
    return new CircuitBreakerSettings(true, 50, 20, 10, Duration.ofSeconds(10), 2);
  }

  /** A breaker that never opens. */
  public static CircuitBreakerSettings disabled() {
    return new CircuitBreakerSettings(false, 100, 1, 1, Duration.ofSeconds(1), 1);
  }
}
