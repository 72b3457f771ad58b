package sphinxserve.server.generate;

import io.grpc.Status;

/** A request refused with a status whose description starts with the offending field's path. */
public final class RequestException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  private final transient Status status;

  private RequestException(Status.Code code, String field, String message) {
    super(field + ": " + message, null, false, false);
    this.status = Status.fromCode(code).withDescription(field + ": " + message);
  }

  /** INVALID_ARGUMENT naming {@code field}. */
  public static RequestException invalid(String field, String message) {
    return new RequestException(Status.Code.INVALID_ARGUMENT, field, message);
  }

  /** RESOURCE_EXHAUSTED naming {@code field}: the node is busy; a retry may pass. */
  public static RequestException exhausted(String field, String message) {
    return new RequestException(Status.Code.RESOURCE_EXHAUSTED, field, message);
  }

  /** NOT_FOUND naming {@code field}. */
  public static RequestException notFound(String field, String message) {
    return new RequestException(Status.Code.NOT_FOUND, field, message);
  }

  public Status status() {
    return status;
  }
}
