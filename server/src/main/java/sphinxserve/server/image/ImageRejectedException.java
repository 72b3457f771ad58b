package sphinxserve.server.image;

/**
 * An image the node refuses: unreadable, over a limit, or arriving while the node already works on as many
 * images as it may. The message names the field ({@code image}) and, for limits, the limit; the service
 * re-prefixes {@link #reason()} with the request's own field path (e.g. {@code messages[0].content[1].image}).
 */
public final class ImageRejectedException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  /** Why the image was refused; the service maps each to a gRPC status code. */
  public enum Kind {
    /** Not an image the decoders read, or corrupt: INVALID_ARGUMENT. */
    INVALID,
    /** Over a configured size limit (bytes, pixels, side): INVALID_ARGUMENT, since a retry cannot succeed. */
    TOO_LARGE,
    /** Too many image jobs in progress: RESOURCE_EXHAUSTED; retrying later may succeed. */
    BUSY,
    /** Not decoded and encoded within the image timeout: RESOURCE_EXHAUSTED; the node is overloaded or the image too costly. */
    TIMED_OUT
  }

  private final Kind kind;
  private final String reason;

  /** A refusal of {@code kind}; {@code reason} says what is wrong without the field name. */
  public ImageRejectedException(Kind kind, String reason) {
    this(kind, reason, null);
  }

  /** A refusal of {@code kind} caused by {@code cause}. */
  public ImageRejectedException(Kind kind, String reason, Throwable cause) {
    super("image: " + reason, cause);
    this.kind = kind;
    this.reason = reason;
  }

  /** Why the image was refused. */
  public Kind kind() {
    return kind;
  }

  /** What is wrong, without the field name. */
  public String reason() {
    return reason;
  }
}
