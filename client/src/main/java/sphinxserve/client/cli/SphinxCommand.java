package sphinxserve.client.cli;

import picocli.CommandLine.Command;

/** The root command; the work is in the subcommands. */
@Command(name = "sphinx", mixinStandardHelpOptions = true, version = "sphinx-serve client 0.1.0",
    description = "Talks to sphinx-serve nodes: ask questions about images, cache images, check health.",
    subcommands = {AskCommand.class, InfoCommand.class, PutImageCommand.class, HealthCommand.class})
final class SphinxCommand {}
