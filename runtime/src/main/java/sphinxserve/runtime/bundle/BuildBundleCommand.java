package sphinxserve.runtime.bundle;

import java.nio.file.Path;

/**
 * {@code build-bundle (--preset test|tiny|bench [--seed N] | --weights DIR | --model sphinx-tiny) --out DIR}:
 * writes a deterministic SPHINX-shaped bundle, random-weight (preset) or trained (a directory exported by
 * {@code tools/}, or a model embedded in the jar). Exit code 2 on bad arguments, with a usage line.
 */
public final class BuildBundleCommand {

  private static final String USAGE =
      "usage: build-bundle (--preset test|tiny|bench [--seed N] | --weights DIR | --model sphinx-tiny) --out DIR";

  private BuildBundleCommand() {}

  public static void main(String[] args) throws Exception {
    String preset = null;
    Path weights = null;
    String model = null;
    Path out = null;
    long seed = 1;
    try {
      for (int i = 0; i < args.length; i++) {
        switch (args[i]) {
          case "--preset" -> preset = args[++i];
          case "--out" -> out = Path.of(args[++i]);
          case "--seed" -> seed = Long.parseLong(args[++i]);
          case "--weights" -> weights = Path.of(args[++i]);
          case "--model" -> model = args[++i];
          case "-h", "--help" -> {
            System.out.println(USAGE);
            return;
          }
          default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'");
        }
      }
      int sources = (preset != null ? 1 : 0) + (weights != null ? 1 : 0) + (model != null ? 1 : 0);
      if (sources != 1 || out == null) throw new IllegalArgumentException("--out and one of --preset, --weights, --model are required");
      long start = System.nanoTime();
      BundleManifest manifest = preset != null
          ? BundleBuilder.build(BundlePreset.named(preset), seed, out)
          : BundleBuilder.build(weights != null ? TrainedModel.fromDirectory(weights) : TrainedModel.embedded(model), out);
      System.out.printf("built %s into %s in %.1f s; bundle id %s%n", manifest.getSource(), out,
          (System.nanoTime() - start) / 1e9, BundleFiles.bundleId(manifest.getFilesMap()));
    } catch (BundleException e) {
      System.err.println("build-bundle: " + e.getMessage());
      System.exit(1);
    } catch (IllegalArgumentException | ArrayIndexOutOfBoundsException e) {
      System.err.println("build-bundle: " + (e instanceof ArrayIndexOutOfBoundsException ? "a flag is missing its value" : e.getMessage()));
      System.err.println(USAGE);
      System.exit(2);
    }
  }
}
