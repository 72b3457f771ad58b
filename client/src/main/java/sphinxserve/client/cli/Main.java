package sphinxserve.client.cli;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import picocli.CommandLine;

/**
 * The {@code sphinx} command line: {@code ask}, {@code info}, {@code put-image}, {@code health}.
 *
 * <pre>
 *   java -jar client/target/sphinx-serve-client-0.1.0-SNAPSHOT-cli.jar ask --image photo.jpg "Detect all people"
 * </pre>
 *
 * Exit codes: 0 success, 1 the node failed or could not be reached, 2 a problem with the command line or its files.
 * Errors are one line a person can act on, never a stack trace.
 */
public final class Main {
  /** Exit code when the node failed or could not be reached. */
  static final int EXIT_NODE = 1;

  private Main() {}

  /** Runs the CLI and exits with its code. */
  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  /** Runs the CLI with the given streams; returns the exit code. */
  static int run(String[] args, PrintStream out, PrintStream err) {
    System.setProperty("java.awt.headless", "true");
    System.setProperty("slf4j.internal.verbosity", "ERROR"); // Resilience4j logs through SLF4J; no binding here
    CommandLine cli = new CommandLine(new SphinxCommand());
    cli.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
    cli.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
    cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
      PrintWriter e = commandLine.getErr();
      commandLine.getOut().flush();
      int code;
      String message;
      if (ex instanceof UserError u) {
        code = UserError.EXIT_USAGE;
        message = u.getMessage();
      } else if (ex instanceof StatusRuntimeException s) {
        code = EXIT_NODE;
        message = describe(s.getStatus(), targetsOf(commandLine));
      } else if (ex instanceof UncheckedIOException || ex instanceof IOException) {
        code = EXIT_NODE;
        message = ex.getMessage();
      } else {
        throw ex;
      }
      e.println("error: " + message);
      e.flush();
      return code;
    });
    return cli.execute(args);
  }

  private static List<String> targetsOf(CommandLine command) {
    return command.getMixins().get("connection") instanceof ConnectionOptions c ? c.effectiveTargets()
        : List.of(ConnectionOptions.DEFAULT_TARGET);
  }

  /** A failed call in words a person can act on. */
  static String describe(Status status, List<String> targets) {
    String where = targets.size() == 1 ? targets.getFirst() : String.join(", ", targets);
    String detail = status.getDescription() == null ? "" : status.getDescription();
    return switch (status.getCode()) {
      case UNAVAILABLE -> detail.startsWith("circuit breaker open")
          ? "every node failed repeatedly and is being rested: " + detail
          : "cannot reach a sphinx-serve node at " + where + " (" + reason(status) + "). Is it running? "
              + "Pick another with --target HOST:PORT or $SPHINX_TARGET.";
      case DEADLINE_EXCEEDED -> "no answer within the deadline; raise --deadline SECONDS. (" + detail + ")";
      case INVALID_ARGUMENT -> "the node rejected the request: " + detail;
      case RESOURCE_EXHAUSTED -> "the node is busy or a quota is used up (try again later): " + detail;
      case NOT_FOUND -> "the node does not know that: " + detail;
      case UNIMPLEMENTED -> "the server at " + where + " does not speak sphinx.v1: " + detail;
      default -> "the node failed: " + status.getCode() + (detail.isEmpty() ? "" : ": " + detail);
    };
  }

  /** Health-check failures ({@code "UNAVAILABLE: io exception"}) in words. */
  static String explain(String error, String target) {
    return error.startsWith("UNAVAILABLE") ? "cannot connect to " + target + ": " + error : error;
  }

  private static String reason(Status status) {
    Throwable cause = status.getCause();
    while (cause != null && cause.getCause() != null) {
      cause = cause.getCause();
    }
    if (cause != null && cause.getMessage() != null) {
      return cause.getMessage();
    }
    return status.getDescription() == null ? status.getCode().toString() : status.getDescription();
  }
}
