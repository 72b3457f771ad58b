package sphinxserve.runtime.bundle;

import java.nio.file.Path;

/**
 * {@code build-bundle --preset test|tiny|bench --out DIR [--seed N]}: writes a deterministic random-weight
 * SPHINX-shaped bundle. Exit code 2 on bad arguments, with a usage line.
 */
public final class BuildBundleCommand {

  private static final String USAGE = "usage: build-bundle --preset test|tiny|bench --out DIR [--seed N]";

  private BuildBundleCommand() {}

  public static void main(String[] args) throws Exception {
    String preset = null;
    Path out = null;
    long seed = 1;
    try {
      for (int i = 0; i < args.length; i++) {
        switch (args[i]) {
          case "--preset" -> preset = args[++i];
          case "--out" -> out = Path.of(args[++i]);
          case "--seed" -> seed = Long.parseLong(args[++i]);
          case "-h", "--help" -> {
            System.out.println(USAGE);
            return;
          }
          default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'");
        }
      }
      if (preset == null || out == null) throw new IllegalArgumentException("--preset and --out are required");
      BundlePreset chosen = BundlePreset.named(preset);
      long start = System.nanoTime();
      BundleManifest manifest = BundleBuilder.build(chosen, seed, out);
      System.out.printf("built %s bundle (seed %d) in %s in %.1f s; bundle id %s%n", chosen.name().toLowerCase(), seed, out,
          (System.nanoTime() - start) / 1e9, BundleFiles.bundleId(manifest.getFilesMap()));
    } catch (IllegalArgumentException | ArrayIndexOutOfBoundsException e) {
      System.err.println("build-bundle: " + (e instanceof ArrayIndexOutOfBoundsException ? "a flag is missing its value" : e.getMessage()));
      System.err.println(USAGE);
      System.exit(2);
    }
  }
}
