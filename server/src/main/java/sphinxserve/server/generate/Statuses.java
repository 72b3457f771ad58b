package sphinxserve.server.generate;

import io.grpc.Status;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import sphinxserve.server.image.ImageRejectedException;

/** Maps failures to gRPC statuses; the one place that decides codes (DESIGN.md "Public API", errors). */
public final class Statuses {

  private Statuses() {}

  /** The status for {@code error}; image refusals name {@code imageField}. */
  public static Status of(Throwable error, String imageField) {
    Throwable e = error;
    while ((e instanceof CompletionException || e instanceof ExecutionException) && e.getCause() != null) e = e.getCause();
    return switch (e) {
      case RequestException r -> r.status();
      case ImageRejectedException r -> Status.fromCode(switch (r.kind()) {
            // A size limit fails the same way on every retry: the request is wrong, not the node busy.
            case INVALID, TOO_LARGE -> Status.Code.INVALID_ARGUMENT;
            case BUSY, TIMED_OUT -> Status.Code.RESOURCE_EXHAUSTED;
          }).withDescription(imageField + ": " + r.reason());
      default -> Status.INTERNAL.withDescription("image encoding failed: " + e).withCause(e);
    };
  }
}
