package sphinxserve.client;

import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Client-side load balancing: round robin over the targets, skipping those whose circuit breaker refuses calls.
 * {@link #acquire()} takes a breaker permission that the caller must settle with {@code onSuccess}, {@code onError}
 * or {@code releasePermission}. One channel per target (rather than one channel with a round-robin policy) is what
 * lets each target have its own breaker.
 */
final class Endpoints {
  private final List<Endpoint> endpoints;
  private final AtomicInteger next = new AtomicInteger();

  Endpoints(List<Endpoint> endpoints) {
    if (endpoints.isEmpty()) {
      throw new IllegalArgumentException("at least one target is needed");
    }
    this.endpoints = List.copyOf(endpoints);
  }

  List<Endpoint> all() {
    return endpoints;
  }

  /**
   * The next target whose breaker permits a call, holding that permission.
   *
   * @throws StatusRuntimeException {@code UNAVAILABLE}, caused by a {@link CallNotPermittedException}, when every
   *     target's breaker is open
   */
  Endpoint acquire() {
    int n = endpoints.size();
    int start = Math.floorMod(next.getAndIncrement(), n);
    for (int i = 0; i < n; i++) {
      Endpoint e = endpoints.get((start + i) % n);
      if (e.breaker().tryAcquirePermission()) {
        return e;
      }
    }
    CallNotPermittedException cause = CallNotPermittedException.createCallNotPermittedException(
        endpoints.get(start).breaker());
    throw Status.UNAVAILABLE.withDescription("circuit breaker open for every target " + targets())
        .withCause(cause).asRuntimeException();
  }

  private List<String> targets() {
    return endpoints.stream().map(Endpoint::target).toList();
  }

  /** Whether a failure is the client refusing to call because every breaker is open. */
  static boolean isCircuitOpen(Throwable t) {
    return t instanceof StatusRuntimeException e && e.getCause() instanceof CallNotPermittedException;
  }
}
