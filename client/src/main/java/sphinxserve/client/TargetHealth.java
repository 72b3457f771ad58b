package sphinxserve.client;

import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import java.util.Objects;

/**
 * The answer of one target's {@code grpc.health.v1.Health/Check}.
 *
 * @param target the target
 * @param status its serving status; {@code UNKNOWN} when the check itself failed
 * @param error  why the check failed ({@code "UNAVAILABLE: ..."}), empty when it answered
 */
public record TargetHealth(String target, ServingStatus status, String error) {
  /** Checks the components. */
  public TargetHealth {
    Objects.requireNonNull(target, "target");
    Objects.requireNonNull(status, "status");
    Objects.requireNonNull(error, "error");
  }

  /** Whether the target answered {@code SERVING}. */
  public boolean serving() {
    return status == ServingStatus.SERVING;
  }
}
