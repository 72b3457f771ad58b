package sphinxserve.client;

import java.time.Duration;
import java.util.Objects;

/**
 * When and how calls are retried. A call is retried only on {@code UNAVAILABLE} or {@code RESOURCE_EXHAUSTED}, and a
 * generation only while no token has arrived, so a partly streamed answer is never duplicated. The wait before
 * retry {@code n} (1-based) is {@code min(maxBackoff, initialBackoff × multiplier^(n-1))} spread by ±{@code jitter}.
 *
 * @param maxAttempts    attempts in all, the first included; 1 disables retries
 * @param initialBackoff wait before the first retry
 * @param multiplier     growth of the wait per retry, at least 1
 * @param jitter         randomisation factor in {@code [0, 1)}: the wait is drawn from {@code [w(1-j), w(1+j)]}
 * @param maxBackoff     longest wait
 */
public record RetrySettings(int maxAttempts, Duration initialBackoff, double multiplier, double jitter,
    Duration maxBackoff) {
  /** Checks the ranges. */
  public RetrySettings {
    Objects.requireNonNull(initialBackoff, "initialBackoff");
    Objects.requireNonNull(maxBackoff, "maxBackoff");
    if (maxAttempts < 1) {
      throw new IllegalArgumentException("maxAttempts must be at least 1, got " + maxAttempts);
    }
    if (initialBackoff.isNegative() || initialBackoff.isZero() || maxBackoff.compareTo(initialBackoff) < 0) {
      throw new IllegalArgumentException("need 0 < initialBackoff <= maxBackoff");
    }
    if (!(multiplier >= 1)) {
      throw new IllegalArgumentException("multiplier must be at least 1, got " + multiplier);
    }
    if (!(jitter >= 0 && jitter < 1)) {
      throw new IllegalArgumentException("jitter must be in [0, 1), got " + jitter);
    }
  }

  /** 4 attempts, waits from 200 ms doubling to at most 5 s, ±50% jitter. */
  public static RetrySettings defaults() {
    return new RetrySettings(4, Duration.ofMillis(200), 2.0, 0.5, Duration.ofSeconds(5));
  }

  /** One attempt, no retries. */
  public static RetrySettings disabled() {
    return new RetrySettings(1, Duration.ofMillis(1), 1.0, 0.0, Duration.ofMillis(1));
  }
}
