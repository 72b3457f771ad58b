package sphinxserve.client.cli;

import com.google.protobuf.TextFormat;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import sphinxserve.client.SphinxClient;

/** {@code info}: prints the served model and the node's limits. */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Describe the served model and limits.")
final class InfoCommand implements Callable<Integer> {
  @Mixin
  ConnectionOptions connection;

  @Spec
  CommandSpec spec;

  @Override
  public Integer call() {
    try (SphinxClient client = connection.client()) {
      spec.commandLine().getOut().print(TextFormat.printer().printToString(client.modelInfo()));
      spec.commandLine().getOut().flush();
    }
    return 0;
  }
}
