package sphinxserve.client.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import sphinxserve.client.SphinxClient;
import sphinxserve.client.TargetHealth;

/** {@code health}: asks every target's {@code grpc.health.v1.Health}; exit 0 only when all are serving. */
@Command(name = "health", mixinStandardHelpOptions = true,
    description = "Check each target's health; exit code 0 when all are SERVING, 1 otherwise.")
final class HealthCommand implements Callable<Integer> {
  @Mixin
  ConnectionOptions connection;

  @Spec
  CommandSpec spec;

  @Option(names = "--service", defaultValue = "", paramLabel = "NAME",
      description = "Service to ask about (default: the node as a whole).")
  String service;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    try (SphinxClient client = connection.client()) {
      List<TargetHealth> report = client.health(service);
      for (TargetHealth h : report) {
        out.printf("%s %s%s%n", h.target(), h.error().isEmpty() ? h.status() : "UNREACHABLE",
            h.error().isEmpty() ? "" : " (" + Main.explain(h.error(), h.target()) + ")");
      }
      out.flush();
      return report.stream().allMatch(TargetHealth::serving) ? 0 : 1;
    }
  }
}
