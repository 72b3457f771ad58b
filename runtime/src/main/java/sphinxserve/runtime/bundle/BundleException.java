package sphinxserve.runtime.bundle;

/** A bundle that cannot be used: the message names the file or tensor and says what is wrong. */
public final class BundleException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  public BundleException(String message) {
    super(message);
  }

  public BundleException(String message, Throwable cause) {
    super(message, cause);
  }
}
