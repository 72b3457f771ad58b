package sphinxserve.runtime.bench;

import ai.onnxruntime.OrtSession;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SequenceStep;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.engine.Sessions;
import sphinxserve.runtime.engine.StepTimer;

/**
 * The decoder benchmark ({@code bin/bench-decoder}): decode-step latency and tokens/s at several batch sizes
 * and contexts, prefill tokens/s for a 1,500-token prompt (a 1,455-token image plus text), the share of step
 * time spent outside ORT's {@code run}, and the paged graph against the contiguous-cache variant of the same
 * weights, as ratios from one process; then ragged batches (sequences at different contexts in one step,
 * {@code --ragged 31x128+1x4000,...}; the bench model holds 4,096 positions) against uniform ones, where padding to the longest history would make
 * every sequence pay for the longest one. {@code --ragged-only} runs that table alone.
 *
 * <p>Decode steps cost the same whatever the cached K/V values are, so each decode configuration starts
 * directly at position {@code context} over blocks that were never prefilled; only positions and block
 * tables matter to the cost.
 */
public final class DecoderBenchmark {

  private static final int BLOCK_SIZE = 16;

  private DecoderBenchmark() {}

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(".bench/bundles/bench");
    int steps = 12;
    int warmup = 3;
    int[] batches = {1, 8, 32, 64};
    int[] contexts = {256, 1024};
    int prefillTokens = 1500;
    String[] ragged = {"1x128", "32x128", "31x128+1x4000", "28x128+4x2048", "1x4000"};
    boolean raggedOnly = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--bundle" -> dir = Path.of(args[++i]);
        case "--steps" -> steps = Integer.parseInt(args[++i]);
        case "--batches" -> batches = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
        case "--contexts" -> contexts = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
        case "--ragged" -> ragged = args[++i].split(",");
        case "--ragged-only" -> raggedOnly = true;
        case "--prefill-tokens" -> prefillTokens = Integer.parseInt(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (!Files.exists(dir.resolve("bundle.json"))) {
      System.out.println("building the bench bundle into " + dir + " ...");
      BundleBuilder.build(BundlePreset.BENCH, 1, dir);
    }
    Bundle bundle = Bundle.open(dir);
    ModelSpec spec = bundle.spec();
    int maxBatch = Arrays.stream(batches).max().orElseThrow();
    int maxContext = Arrays.stream(contexts).max().orElseThrow();
    int blocksPerSequence = (maxContext + warmup + steps + BLOCK_SIZE) / BLOCK_SIZE + 1;
    int numBlocks = Math.max(maxBatch * blocksPerSequence, (prefillTokens + 64) / BLOCK_SIZE + 1);
    for (String config : ragged) {
      int needed = 0;
      for (int context : raggedContexts(config)) needed += blocksFor(context, warmup, steps);
      numBlocks = Math.max(numBlocks, needed);
    }
    RuntimeOptions options = RuntimeOptions.cpu();
    System.out.printf(Locale.ROOT, "bundle %s (%s, decoder weights %s), %d intra-op threads, %d cores, KV pool %d blocks (%.0f MiB)%n",
        dir, bundle.manifest().getSource(), weightsDescription(bundle), options.effectiveIntraOpThreads(), Runtime.getRuntime().availableProcessors(),
        numBlocks, OnnxModelRuntime.kvLayoutFor(spec, BLOCK_SIZE, numBlocks).totalBytes() / 1048576.0);

    double[][] pagedMillis = new double[contexts.length][batches.length];
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(spec, BLOCK_SIZE, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, options, storage)) {
      if (!raggedOnly) {
        prefill(runtime, spec, prefillTokens);
        System.out.println();
        System.out.println("| context | batch | step p50 ms | step p90 ms | tokens/s | outside ORT run |");
        System.out.println("|---|---|---|---|---|---|");
        for (int c = 0; c < contexts.length; c++) {
          for (int b = 0; b < batches.length; b++) {
            pagedMillis[c][b] = decode(runtime, spec, batches[b], contexts[c], blocksPerSequence, warmup, steps);
          }
        }
      }
      if (!raggedOnly && batches[0] == 1) printWeightReadFloor(bundle, options, pagedMillis[0][0], contexts[0]);
      System.out.println();
      System.out.println("Ragged decode batches (sequences × context, + another group; decode steps as above):");
      System.out.println("| batch | tokens held | step p50 ms | step p90 ms | tokens/s | decoder runs per step |");
      System.out.println("|---|---|---|---|---|---|");
      for (String config : ragged) decodeRagged(runtime, config, raggedContexts(config), warmup, steps);
    }
    if (raggedOnly) return;

    if (bundle.manifest().hasQuantization()) {
      System.out.println();
      System.out.println("(no paged vs contiguous comparison: the contiguous baseline is the float32 bench decoder)");
      return;
    }
    System.out.println();
    System.out.println("Paged vs contiguous cache (same weights, decode step p50):");
    System.out.println("| context | batch | paged ms | contiguous ms | paged / contiguous |");
    System.out.println("|---|---|---|---|---|");
    byte[] contiguous = BundleBuilder.contiguousDecoder(BundlePreset.BENCH, 1).toByteArray();
    try (OrtSession session = Sessions.open(sphinxserve.runtime.engine.OrtEnvironments.get(), "contiguous decoder", options, contiguous)) {
      for (int c = 0; c < contexts.length; c++) {
        for (int b = 0; b < batches.length; b++) {
          int capacity = contexts[c] + warmup + steps;
          try (ContiguousDecoder decoder = new ContiguousDecoder(session, BundlePreset.BENCH.decoder(), batches[b], capacity)) {
            double[] times = new double[steps];
            for (int s = 0; s < warmup + steps; s++) {
              long start = System.nanoTime();
              decoder.decodeStep(contexts[c] + s, 100 + s);
              if (s >= warmup) times[s - warmup] = (System.nanoTime() - start) / 1e6;
            }
            double p50 = percentile(times, 50);
            System.out.printf(Locale.ROOT, "| %d | %d | %.2f | %.2f | %.2f |%n", contexts[c], batches[b], pagedMillis[c][b], p50, pagedMillis[c][b] / p50);
          }
        }
      }
    }
  }

  /** The one-sequence step against the weight-read floor ({@link WeightReadFloor}). */
  private static void printWeightReadFloor(Bundle bundle, RuntimeOptions options, double stepMillis, int context) throws Exception {
    long bytes = WeightReadFloor.matmulWeightBytes(bundle.decoderFile());
    double bandwidth = WeightReadFloor.readBandwidth(options.effectiveIntraOpThreads());
    double floorMillis = bytes / bandwidth * 1e3;
    System.out.printf(Locale.ROOT, "%nWeight-read floor: %.1f MB of matmul weights per step / %.1f GB/s read bandwidth (%d threads, "
        + "1 GiB streamed) = %.2f ms; batch-1 step at context %d: %.2f ms = %.2f× the floor%n",
        bytes / 1e6, bandwidth / 1e9, options.effectiveIntraOpThreads(), floorMillis, context, stepMillis, stepMillis / floorMillis);
  }

  private static String weightsDescription(Bundle bundle) {
    if (!bundle.manifest().hasQuantization()) return "float32";
    var q = bundle.manifest().getQuantization();
    return q.getWeights() + ", block " + q.getBlockSize() + ", accuracy level " + q.getAccuracyLevel()
        + ", lm_head " + q.getTensorsOrDefault("lm_head", "float32");
  }

  private static void prefill(OnnxModelRuntime runtime, ModelSpec spec, int numTokens) {
    int imageTokens = spec.vision().tokensPerImage();
    float[] rows = new float[imageTokens * spec.hiddenSize()];
    SplittableRandom random = new SplittableRandom(5);
    for (int i = 0; i < rows.length; i++) rows[i] = (float) random.nextGaussian();
    ImageEmbeddings image = new ImageEmbeddings("bench", imageTokens, spec.hiddenSize(), rows);
    int[] prompt = new int[numTokens];
    prompt[0] = spec.specialTokens().bos();
    for (int i = 1; i < numTokens; i++) {
      prompt[i] = i <= imageTokens ? spec.specialTokens().imagePlaceholder() : 5 + random.nextInt(spec.vocabSize() - 5);
    }
    int[] table = new int[(numTokens + BLOCK_SIZE - 1) / BLOCK_SIZE];
    for (int i = 0; i < table.length; i++) table[i] = i;
    System.out.println();
    System.out.println("| prefill of " + numTokens + " tokens (" + imageTokens + " image) | time ms (p50 of 3) | tokens/s |");
    System.out.println("|---|---|---|");
    for (int chunk : new int[] {numTokens, 512}) {
      double[] times = new double[3];
      for (int r = 0; r < 4; r++) {
        long start = System.nanoTime();
        for (int at = 0; at < numTokens; at += chunk) {
          int end = Math.min(numTokens, at + chunk);
          runtime.step(List.of(new SequenceStep(Arrays.copyOfRange(prompt, at, end), at, table, image, 1, end == numTokens)));
        }
        if (r > 0) times[r - 1] = (System.nanoTime() - start) / 1e6;
      }
      double p50 = percentile(times, 50);
      System.out.printf(Locale.ROOT, "| %s | %.1f | %.0f |%n", chunk == numTokens ? "one step" : "chunks of " + chunk, p50, numTokens / (p50 / 1e3));
    }
  }

  /** Decode steps of {@code batch} sequences at positions context, context+1, ...; returns the p50 in ms. */
  private static double decode(OnnxModelRuntime runtime, ModelSpec spec, int batch, int context, int blocksPerSequence, int warmup, int steps) {
    List<Integer> blocks = new ArrayList<>();
    for (int i = 0; i < batch * blocksPerSequence; i++) blocks.add(i);
    Collections.shuffle(blocks, new java.util.Random(batch * 31L + context));
    int[][] tables = new int[batch][blocksPerSequence];
    for (int b = 0; b < batch; b++) {
      for (int i = 0; i < blocksPerSequence; i++) tables[b][i] = blocks.get(b * blocksPerSequence + i);
    }
    int[] contexts = new int[batch];
    Arrays.fill(contexts, context);
    StepTimer timer = runtime.timer();
    double[] times = decodeSteps(runtime, tables, contexts, warmup, steps);
    double p50 = percentile(times, 50);
    double totalNanos = Arrays.stream(times).sum() * 1e6;
    double outside = 1 - timer.runNanos() / totalNanos; // everything in step() but ORT's run
    System.out.printf(Locale.ROOT, "| %d | %d | %.2f | %.2f | %.0f | %.2f%% |%n", context, batch, p50, percentile(times, 90),
        batch / (p50 / 1e3), 100 * outside);
    return p50;
  }

  /** "31x128+1x4000" → 31 contexts of 128 then one of 4,000. */
  private static int[] raggedContexts(String config) {
    List<Integer> contexts = new ArrayList<>();
    for (String group : config.split("\\+")) {
      String[] parts = group.split("x");
      for (int i = 0; i < Integer.parseInt(parts[0]); i++) contexts.add(Integer.parseInt(parts[1]));
    }
    return contexts.stream().mapToInt(Integer::intValue).toArray();
  }

  private static int blocksFor(int context, int warmup, int steps) {
    return (context + warmup + steps + BLOCK_SIZE) / BLOCK_SIZE + 1;
  }

  /**
   * Decode steps of one sequence per entry of {@code contexts}, each at its own position, blocks scattered over
   * the pool; the long sequences are interleaved with the short ones in batch order (the last group is spread
   * through the batch), as a scheduler's admission order would have them. Returns the p50 in ms.
   */
  private static double decodeRagged(OnnxModelRuntime runtime, String label, int[] contexts, int warmup, int steps) {
    int batch = contexts.length;
    int[] order = spread(contexts);
    int total = 0;
    for (int context : contexts) total += blocksFor(context, warmup, steps);
    List<Integer> blocks = new ArrayList<>();
    for (int i = 0; i < total; i++) blocks.add(i);
    Collections.shuffle(blocks, new java.util.Random(label.hashCode()));
    int[][] tables = new int[batch][];
    int next = 0;
    long held = 0;
    for (int b = 0; b < batch; b++) {
      int context = contexts[order[b]];
      tables[b] = new int[blocksFor(context, warmup, steps)];
      for (int i = 0; i < tables[b].length; i++) tables[b][i] = blocks.get(next++);
      held += context;
    }
    int[] ordered = new int[batch];
    for (int b = 0; b < batch; b++) ordered[b] = contexts[order[b]];
    StepTimer timer = runtime.timer();
    double[] times = decodeSteps(runtime, tables, ordered, warmup, steps);
    double p50 = percentile(times, 50);
    System.out.printf(Locale.ROOT, "| %s | %d | %.2f | %.2f | %.0f | %.1f |%n", label, held, p50, percentile(times, 90),
        batch / (p50 / 1e3), (double) timer.steps() / steps);
    return p50;
  }

  /**
   * Runs {@code warmup + steps} decode steps in which sequence b holds {@code tables[b]} and starts at position
   * {@code contexts[b]}; returns the measured steps' times in ms. The runtime's timer restarts after the warm-up.
   */
  private static double[] decodeSteps(OnnxModelRuntime runtime, int[][] tables, int[] contexts, int warmup, int steps) {
    int batch = tables.length;
    double[] times = new double[steps];
    for (int s = 0; s < warmup + steps; s++) {
      if (s == warmup) runtime.timer().reset();
      List<SequenceStep> batchSteps = new ArrayList<>(batch);
      for (int b = 0; b < batch; b++) {
        int position = contexts[b] + s;
        batchSteps.add(new SequenceStep(new int[] {100 + b + s}, position, Arrays.copyOf(tables[b], position / BLOCK_SIZE + 1), null, 0, true));
      }
      long start = System.nanoTime();
      runtime.step(batchSteps);
      if (s >= warmup) times[s - warmup] = (System.nanoTime() - start) / 1e6;
    }
    return times;
  }

  /** A batch order over {@code contexts} (grouped as given) that places the sequences differing from the first evenly among the others. */
  private static int[] spread(int[] contexts) {
    List<Integer> common = new ArrayList<>();
    List<Integer> other = new ArrayList<>();
    for (int i = 0; i < contexts.length; i++) (contexts[i] == contexts[0] ? common : other).add(i);
    int[] order = new int[contexts.length];
    int c = 0;
    int o = 0;
    for (int b = 0; b < contexts.length; b++) {
      // Place the o-th other sequence at about position (o + 1/2) × batch / others.
      boolean placeOther = o < other.size() && (c >= common.size() || b >= (2L * o + 1) * contexts.length / (2L * other.size()));
      order[b] = placeOther ? other.get(o++) : common.get(c++);
    }
    return order;
  }

  private static double percentile(double[] values, int p) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)];
  }
}
