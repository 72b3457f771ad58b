package sphinxserve.runtime.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Map;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;

/**
 * Builds preset bundles once per JVM into the module's {@code target/} and hands out the opened bundle.
 * Tests that modify a bundle copy it first ({@link #copyOf}).
 */
public final class TestBundles {

  /** The seed every test bundle uses. */
  public static final long SEED = 1;

  private static final Map<BundlePreset, Bundle> BUILT = new ConcurrentHashMap<>();

  private TestBundles() {}

  /** The {@code preset} bundle with {@link #SEED}, built on first use. */
  public static Bundle get(BundlePreset preset) {
    return BUILT.computeIfAbsent(preset, p -> {
      try {
        Path dir = Files.createTempDirectory("sphinx-bundle-" + p.name().toLowerCase());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteQuietly(dir)));
        BundleBuilder.build(p, SEED, dir);
        return Bundle.open(dir);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    });
  }

  private static void deleteQuietly(Path dir) {
    try (var files = Files.list(dir)) {
      for (Path file : (Iterable<Path>) files::iterator) Files.deleteIfExists(file);
      Files.deleteIfExists(dir);
    } catch (IOException ignored) {
      // A leftover temporary directory is harmless.
    }
  }

  /** A copy of {@code bundle}'s directory in {@code target}, for tests that corrupt files. */
  public static Path copyOf(Bundle bundle, Path target) throws IOException {
    try (var files = Files.list(bundle.directory())) {
      for (Path file : (Iterable<Path>) files::iterator) {
        Files.copy(file, target.resolve(file.getFileName()));
      }
    }
    return target;
  }
}
