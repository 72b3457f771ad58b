package sphinxserve.server;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.Locale;
import java.util.stream.Stream;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundleFiles;
import sphinxserve.runtime.bundle.BundlePreset;

/**
 * Resolves {@code --bundle}: a directory as given, or {@code embedded:<preset>} built once (seed 1) into the
 * bundle cache. A build goes to a private temporary directory and is renamed into place, so a crash or two
 * nodes starting together never leave a half-written bundle under the final name.
 */
final class EmbeddedBundles {

  /** The seed embedded bundles are built with. */
  static final long SEED = 1;

  private EmbeddedBundles() {}

  /** The bundle directory {@code config} names, built first when embedded and missing. */
  static Path resolve(NodeConfig config) {
    if (!config.bundle().startsWith(NodeConfig.EMBEDDED)) return Path.of(config.bundle());
    BundlePreset preset = BundlePreset.named(config.bundle().substring(NodeConfig.EMBEDDED.length()));
    Path dir = config.bundleCache().resolve(preset.name().toLowerCase(Locale.ROOT) + "-seed" + SEED);
    if (Files.isRegularFile(dir.resolve(BundleFiles.MANIFEST))) return dir;
    try {
      Files.createDirectories(config.bundleCache());
      Path tmp = Files.createTempDirectory(config.bundleCache(), dir.getFileName() + ".tmp-");
      try {
        BundleBuilder.build(preset, SEED, tmp);
        Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
      } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException | java.nio.file.DirectoryNotEmptyException e) {
        if (!Files.isRegularFile(dir.resolve(BundleFiles.MANIFEST))) throw e; // else another node built it first
      } finally {
        deleteRecursively(tmp);
      }
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot build the embedded " + preset + " bundle in " + dir + ": " + e.getMessage(), e);
    }
  }

  private static void deleteRecursively(Path dir) throws IOException {
    if (!Files.exists(dir)) return;
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
    }
  }
}
