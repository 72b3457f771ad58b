package sphinxserve.client.cli;

/** A problem the person running the CLI can fix (a missing file, a bad option); printed without a stack trace. */
final class UserError extends RuntimeException {
  /** Exit code for errors in the command line or its files. */
  static final int EXIT_USAGE = 2;

  UserError(String message) {
    super(message);
  }
}
