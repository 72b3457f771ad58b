package sphinxserve.client.cli;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;
import sphinxserve.client.SphinxClient;

/** Options every subcommand shares, mixed into each: where the nodes are, TLS, deadline. */
final class ConnectionOptions {
  /** The target used when neither --target nor SPHINX_TARGET says otherwise. */
  static final String DEFAULT_TARGET = "localhost:50051";

  @Option(names = {"-t", "--target"}, paramLabel = "HOST:PORT",
      description = "Node to call; repeat for several (round robin). Default: $SPHINX_TARGET or " + DEFAULT_TARGET)
  List<String> targets = new ArrayList<>();

  @Option(names = "--image-affinity",
      description = "Route by image: ring hash on x-image-digest over the targets (several HOST:PORT or one dns:///NAME:PORT).")
  boolean imageAffinity;

  @Option(names = "--tls", description = "Use TLS (the JDK's trusted certificates).")
  boolean tls;

  @Option(names = "--ca-cert", paramLabel = "PEM", description = "Use TLS trusting these CA certificates.")
  Path caCert;

  @Option(names = "--deadline", paramLabel = "SECONDS", defaultValue = "120",
      description = "Deadline of each call, retries included (default: ${DEFAULT-VALUE}).")
  long deadlineSeconds;

  /** The targets to call, after defaults. */
  List<String> effectiveTargets() {
    if (!targets.isEmpty()) {
      return targets;
    }
    String env = System.getenv("SPHINX_TARGET");
    return List.of(env == null || env.isBlank() ? DEFAULT_TARGET : env.strip());
  }

  /** A client for the chosen targets. */
  SphinxClient client() {
    if (deadlineSeconds <= 0) {
      throw new UserError("--deadline must be positive, got " + deadlineSeconds);
    }
    SphinxClient.Builder b = SphinxClient.builder().targets(effectiveTargets()).tls(tls)
        .imageAffinity(imageAffinity).defaultDeadline(Duration.ofSeconds(deadlineSeconds));
    if (caCert != null) {
      b.trustCertificates(caCert);
    }
    try {
      return b.build();
    } catch (IllegalArgumentException e) {
      throw new UserError(e.getMessage());
    }
  }
}
