package sphinxserve.runtime.bundle;

import java.nio.file.Path;
import sphinxserve.runtime.graph.WeightQuantization;

/**
 * {@code build-bundle (--preset test|tiny|bench [--seed N] | --weights DIR | --model sphinx-tiny|DIR) --out DIR
 * [--quantize int4|int8|none] [--max-context N]}:
 * writes a deterministic bundle: SPHINX-shaped, random-weight (preset) or trained (a directory exported by
 * {@code tools/}, or a model embedded in the jar); or text-only from a Hugging Face or Meta-layout LLaMA checkpoint
 * folder ({@code --model DIR}). Exit code 2 on bad arguments, with a usage line; 1 when the inputs are bad.
 */
public final class BuildBundleCommand {

  private static final String USAGE =
      "usage: build-bundle (--preset test|tiny|bench [--seed N] | --weights DIR | --model sphinx-tiny|DIR [--max-context N]) --out DIR"
          + " [--quantize int4|int8|none [--quant-block-size N] [--quant-accuracy-level 0-4] [--quant-head int4|int8|none]]";

  private BuildBundleCommand() {}

  public static void main(String[] args) throws Exception {
    String preset = null;
    Path weights = null;
    String model = null;
    Path out = null;
    long seed = 1;
    String quantize = "none";
    Integer blockSize = null;
    Integer accuracyLevel = null;
    Integer head = null;
    int maxContext = 0;
    try {
      for (int i = 0; i < args.length; i++) {
        switch (args[i]) {
          case "--preset" -> preset = args[++i];
          case "--out" -> out = Path.of(args[++i]);
          case "--seed" -> seed = Long.parseLong(args[++i]);
          case "--weights" -> weights = Path.of(args[++i]);
          case "--model" -> model = args[++i];
          case "--max-context" -> maxContext = Integer.parseInt(args[++i]);
          case "--quantize" -> quantize = args[++i];
          case "--quant-block-size" -> blockSize = Integer.parseInt(args[++i]);
          case "--quant-accuracy-level" -> accuracyLevel = Integer.parseInt(args[++i]);
          case "--quant-head" -> head = WeightQuantization.headBits(args[++i]);
          case "-h", "--help" -> {
            System.out.println(USAGE);
            return;
          }
          default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'");
        }
      }
      int sources = (preset != null ? 1 : 0) + (weights != null ? 1 : 0) + (model != null ? 1 : 0);
      if (sources != 1 || out == null) throw new IllegalArgumentException("--out and one of --preset, --weights, --model are required");
      WeightQuantization quantization = WeightQuantization.named(quantize);
      if (!quantization.enabled() && (blockSize != null || accuracyLevel != null || head != null)) {
        throw new IllegalArgumentException("--quant-block-size, --quant-accuracy-level and --quant-head need --quantize int4|int8");
      }
      if (blockSize != null) quantization = quantization.withBlockSize(blockSize);
      if (accuracyLevel != null) quantization = quantization.withAccuracyLevel(accuracyLevel);
      if (head != null) quantization = quantization.withHeadBits(head);
      boolean checkpoint = model != null && java.nio.file.Files.isDirectory(Path.of(model));
      if (maxContext != 0 && !checkpoint) throw new IllegalArgumentException("--max-context applies to --model DIR only");
      long start = System.nanoTime();
      BundleManifest manifest;
      if (checkpoint && sphinxserve.runtime.model.SphinxExport.isExport(Path.of(model))) {
        sphinxserve.runtime.model.SphinxExport export = sphinxserve.runtime.model.SphinxExport.open(Path.of(model), maxContext);
        manifest = BundleBuilder.build(export, quantization, "model:" + export.name() + ":sha256="
            + export.decoder().contentHash(export.extraInputs()), out);
      } else if (checkpoint) {
        sphinxserve.runtime.model.LlamaCheckpoint folder = sphinxserve.runtime.model.LlamaCheckpoint.open(Path.of(model), maxContext);
        manifest = BundleBuilder.build(folder, quantization, "model:" + folder.name() + ":sha256=" + folder.contentHash(), out);
      } else if (preset != null) {
        manifest = BundleBuilder.build(BundlePreset.named(preset), seed, quantization, out);
      } else {
        manifest = BundleBuilder.build(weights != null ? TrainedModel.fromDirectory(weights) : TrainedModel.embedded(model),
            quantization, out);
      }
      System.out.printf("built %s into %s in %.1f s; decoder weights %s; bundle id %s%n", manifest.getSource(), out,
          (System.nanoTime() - start) / 1e9, quantization.enabled()
              ? quantization.dtype() + " (block " + quantization.blockSize() + ", accuracy level " + quantization.accuracyLevel()
                  + ", lm_head " + quantization.head().dtype() + ")"
              : "float32",
          BundleFiles.bundleId(manifest.getFilesMap()));
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
