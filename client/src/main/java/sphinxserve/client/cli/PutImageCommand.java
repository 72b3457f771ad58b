package sphinxserve.client.cli;

import dev.sphinxserve.proto.v1.PutImageResponse;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import sphinxserve.client.SphinxClient;

/** {@code put-image}: sends an image to the node's cache and prints its digest and size. */
@Command(name = "put-image", mixinStandardHelpOptions = true,
    description = "Encode and cache an image on the node; prints the digest later requests can use.")
final class PutImageCommand implements Callable<Integer> {
  @Mixin
  ConnectionOptions connection;

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "FILE", description = "The image (JPEG, PNG…).")
  Path image;

  @Override
  public Integer call() {
    LoadedImage loaded = LoadedImage.read(image);
    try (SphinxClient client = connection.client()) {
      PutImageResponse r = client.putImage(loaded.image());
      spec.commandLine().getOut().printf("digest %s%nsize   %dx%d%ncached %s%n", r.getDigest(), r.getWidth(),
          r.getHeight(), r.getCached() ? "yes (the node already held it)" : "no (encoded now)");
      spec.commandLine().getOut().flush();
    }
    return 0;
  }
}
