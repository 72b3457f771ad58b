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
import sphinxserve.runtime.bundle.TrainedModel;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.model.LlamaCheckpoint;
import sphinxserve.runtime.model.SphinxExport;
import sphinxserve.server.config.NodeConfig;

/**
 * Resolves what the node serves into a bundle directory: {@code --model DIR} (a LLaMA-family checkpoint folder,
 * built once into the bundle cache under the SHA-256 of its files and the build options, so a changed file or
 * option gets a new bundle and the second start only hashes), or {@code --bundle}: a directory as given, or
 * {@code embedded:<name>} built once into the bundle cache (every cache key includes
 * {@link BundleBuilder#BUILDER_REVISION}, so a newer builder never serves an older one's bundle): a trained model shipped in the jar ({@code sphinx-tiny}, the default; cached under its weights'
 * hash, so a new model never meets a stale bundle) or a random preset ({@code test|tiny|bench}, seed 1). A build goes to a private temporary directory and is renamed into place, so a crash or two
 * nodes starting together never leave a half-written bundle under the final name.
 */
final class EmbeddedBundles {

  private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(EmbeddedBundles.class);

  /** The seed embedded bundles are built with. */
  static final long SEED = 1;

  private EmbeddedBundles() {}

  /** The bundle directory {@code config} names, built first when embedded and missing. */
  static Path resolve(NodeConfig config) {
    if (config.model() != null) return resolveModel(config);
    if (!config.bundle().startsWith(NodeConfig.EMBEDDED)) return Path.of(config.bundle());
    String name = config.bundle().substring(NodeConfig.EMBEDDED.length());
    if (TrainedModel.EMBEDDED.contains(name)) {
      TrainedModel model = TrainedModel.embedded(name);
      Path dir = config.bundleCache().resolve(name + "-" + model.weightsSha256().substring(0, 16) + "-b" + BundleBuilder.BUILDER_REVISION);
      return buildOnce(dir, name, out -> BundleBuilder.build(model, out));
    }
    BundlePreset preset;
    try {
      preset = BundlePreset.named(name);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("unknown embedded bundle '" + name + "'; known: "
          + String.join(", ", TrainedModel.EMBEDDED) + ", test, tiny, bench");
    }
    Path dir = config.bundleCache().resolve(preset.name().toLowerCase(Locale.ROOT) + "-seed" + SEED + "-b" + BundleBuilder.BUILDER_REVISION);
    return buildOnce(dir, name, out -> BundleBuilder.build(preset, SEED, out));
  }

  /** The bundle of the checkpoint folder {@code --model}, built on first use. */
  private static Path resolveModel(NodeConfig config) {
    boolean sphinx = SphinxExport.isExport(config.model());
    SphinxExport export = sphinx ? SphinxExport.open(config.model(), config.maxContext()) : null;
    LlamaCheckpoint model = sphinx ? export.decoder() : LlamaCheckpoint.open(config.model(), config.maxContext());
    WeightQuantization quantization = WeightQuantization.named(config.quantize());
    String options = "format=" + BundleBuilder.FORMAT_VERSION + ";builder=" + BundleBuilder.BUILDER_REVISION + ";quantize=" + config.quantize() + ";max-context=" + config.maxContext();
    String key = sha256((sphinx ? model.contentHash(export.extraInputs()) : model.contentHash()) + "\n" + options);
    String name = model.name().replaceAll("[^A-Za-z0-9._-]", "_");
    Path dir = config.bundleCache().resolve(name + "-" + key.substring(0, 16));
    if (!Files.isRegularFile(dir.resolve(BundleFiles.MANIFEST))) {
      log.info("building model bundle model={} into={} quantize={}", config.model(), dir, config.quantize());
    }
    String source = "model:" + name + ":sha256=" + key;
    return buildOnce(dir, name, out -> {
      if (sphinx) BundleBuilder.build(export, quantization, source, out);
      else BundleBuilder.build(model, quantization, source, out);
    });
  }

  private static String sha256(String text) {
    try {
      return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
          .digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** How a bundle is written into a directory. */
  private interface Build {
    void into(Path dir) throws IOException;
  }

  /** {@code dir}, built by {@code build} unless it holds a bundle already (built beside it, then renamed into place). */
  private static Path buildOnce(Path dir, String name, Build build) {
    Path cache = dir.getParent();
    if (Files.isRegularFile(dir.resolve(BundleFiles.MANIFEST))) return dir;
    try {
      Files.createDirectories(cache);
      Path tmp = Files.createTempDirectory(cache, dir.getFileName() + ".tmp-");
      try {
        build.into(tmp);
        Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
      } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException | java.nio.file.DirectoryNotEmptyException e) {
        if (!Files.isRegularFile(dir.resolve(BundleFiles.MANIFEST))) throw e; // else another node built it first
      } finally {
        deleteRecursively(tmp);
      }
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot build the embedded " + name + " bundle in " + dir + ": " + e.getMessage(), e);
    }
  }

  private static void deleteRecursively(Path dir) throws IOException {
    if (!Files.exists(dir)) return;
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
    }
  }
}
