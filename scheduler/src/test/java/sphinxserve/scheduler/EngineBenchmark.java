package sphinxserve.scheduler;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.TokenLogprob;
import sphinxserve.api.TokenSink;
import sphinxserve.api.Usage;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;

/**
 * The engine benchmark ({@code bin/bench-engine}): one workload — Poisson arrivals, prompts of 32–512 tokens,
 * log-normal output lengths (median 64, at most 512) — served three ways in one process over the {@code bench}
 * bundle: sequentially (batch 1), by static batching (batches of 32 run to completion, no joining), and by
 * continuous batching. Reports output tokens/s, TTFT and inter-token latency p50/p99, then the scheduler's
 * overhead (everything but {@code ModelRuntime.step}) with 64 running sequences.
 *
 * <p>Run: {@code bin/bench-engine [--requests 200] [--rate 4] [--bundle DIR]}.
 */
public final class EngineBenchmark {

  private EngineBenchmark() {}

  /** One request of the workload. */
  private record Job(double arrivalSeconds, int promptTokens, int outputTokens, long seed) {}

  /** Times of one request's events. */
  private static final class Timing implements TokenSink {
    final long arrivalNanos;
    final List<Long> tokenNanos = new ArrayList<>();
    volatile boolean done;

    Timing(long arrivalNanos) {
      this.arrivalNanos = arrivalNanos;
    }

    @Override
    public synchronized void onTokens(String text, int[] tokenIds, List<TokenLogprob> logprobs) {
      long now = System.nanoTime();
      for (int i = 0; i < tokenIds.length; i++) tokenNanos.add(now);
    }

    @Override
    public void onFinish(FinishReason reason, Usage usage, String message) {
      done = true;
    }
  }

  public static void main(String[] args) throws Exception {
    int numRequests = 200;
    double rate = 4.0;
    Path dir = Path.of(".bench/bundles/bench");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--requests" -> numRequests = Integer.parseInt(args[++i]);
        case "--rate" -> rate = Double.parseDouble(args[++i]);
        case "--bundle" -> dir = Path.of(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (!Files.exists(dir.resolve("bundle.json"))) BundleBuilder.build(BundlePreset.BENCH, 1, dir);
    Bundle bundle = Bundle.open(dir);
    List<Job> jobs = workload(numRequests, rate, 2024);
    int totalOut = jobs.stream().mapToInt(Job::outputTokens).sum();
    int totalPrompt = jobs.stream().mapToInt(Job::promptTokens).sum();
    System.out.printf(Locale.ROOT, "workload: %d requests, Poisson %.1f/s, %d prompt tokens, %d output tokens (median %d, max %d)%n",
        numRequests, rate, totalPrompt, totalOut, median(jobs.stream().mapToInt(Job::outputTokens).toArray()),
        jobs.stream().mapToInt(Job::outputTokens).max().orElse(0));
    int numBlocks = 64 * (512 + 512) / 16 + 64;
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage)) {
      System.out.println();
      System.out.println("| mode | wall s | output tokens/s | TTFT p50 s | TTFT p99 s | ITL p50 ms | ITL p99 ms | steps |");
      System.out.println("|---|---|---|---|---|---|---|---|");
      double sequential = serve("sequential (batch 1)", runtime, storage, jobs, EngineConfig.defaults().withMaxNumSeqs(1), 1);
      double staticBatching = serve("static batches of 32", runtime, storage, jobs, EngineConfig.defaults().withMaxNumSeqs(32), 32);
      double continuous = serve("continuous batching", runtime, storage, jobs, EngineConfig.defaults().withMaxNumSeqs(64), 0);
      System.out.printf(Locale.ROOT, "%ncontinuous / static = %.2fx, continuous / sequential = %.2fx%n",
          continuous / staticBatching, continuous / sequential);
      overheadAt64(runtime, storage, bundle.spec(), true);
      overheadAt64(runtime, storage, bundle.spec(), false);
    }
  }

  /** Serves {@code jobs}; {@code staticBatch} > 0 submits them in closed batches of that size. Returns tokens/s. */
  private static double serve(String name, OnnxModelRuntime runtime, KvCacheStorage storage, List<Job> jobs,
      EngineConfig config, int staticBatch) throws Exception {
    KvCacheManager kv = new KvCacheManager(storage, false); // every mode computes every prompt
    List<Timing> timings = new ArrayList<>();
    long start;
    try (Engine engine = new Engine(runtime, kv, config.withMaxWaiting(jobs.size())).start()) {
      start = System.nanoTime();
      if (staticBatch <= 0 || staticBatch == 1) {
        for (Job job : jobs) {
          sleepUntil(start + (long) (job.arrivalSeconds() * 1e9));
          timings.add(submit(engine, job, runtime.spec()));
        }
      } else {
        for (int from = 0; from < jobs.size(); from += staticBatch) {
          List<Job> batch = jobs.subList(from, Math.min(jobs.size(), from + staticBatch));
          sleepUntil(start + (long) (batch.getLast().arrivalSeconds() * 1e9)); // the batch is complete
          List<Timing> batchTimings = new ArrayList<>();
          for (Job job : batch) {
            Timing t = submit(engine, job, runtime.spec(), start + (long) (job.arrivalSeconds() * 1e9));
            batchTimings.add(t);
          }
          timings.addAll(batchTimings);
          while (!batchTimings.stream().allMatch(t -> t.done)) Thread.sleep(1); // run to completion
        }
      }
      while (!timings.stream().allMatch(t -> t.done)) Thread.sleep(2);
      long end = timings.stream().mapToLong(t -> t.tokenNanos.getLast()).max().orElseThrow();
      double wall = (end - start) / 1e9;
      long tokens = timings.stream().mapToLong(t -> t.tokenNanos.size()).sum();
      double[] ttft = timings.stream().mapToDouble(t -> (t.tokenNanos.getFirst() - t.arrivalNanos) / 1e9).toArray();
      List<Double> gaps = new ArrayList<>();
      for (Timing t : timings) for (int i = 1; i < t.tokenNanos.size(); i++) gaps.add((t.tokenNanos.get(i) - t.tokenNanos.get(i - 1)) / 1e6);
      double[] itl = gaps.stream().mapToDouble(Double::doubleValue).toArray();
      System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %d |%n", name, wall, tokens / wall,
          percentile(ttft, 50), percentile(ttft, 99), percentile(itl, 50), percentile(itl, 99), engine.stats().numSteps());
      return tokens / wall;
    }
  }

  /** Scheduler overhead with 64 sequences decoding together. */
  private static void overheadAt64(OnnxModelRuntime runtime, KvCacheStorage storage, ModelSpec spec, boolean greedy) throws Exception {
    KvCacheManager kv = new KvCacheManager(storage, false);
    try (Engine engine = new Engine(runtime, kv, EngineConfig.defaults().withMaxNumSeqs(64)).start()) {
      List<Timing> timings = new ArrayList<>();
      for (int i = 0; i < 64; i++) timings.add(submit(engine, new Job(0, 64, 96, 7000 + i), spec, System.nanoTime(), greedy));
      while (engine.stats().numRunning() < 64 || timings.stream().anyMatch(t -> t.tokenNanos.size() < 8)) Thread.sleep(1);
      long steps0 = engine.stats().numSteps();
      long step0 = engine.stats().stepNanos();
      long model0 = engine.stats().modelNanos();
      while (timings.stream().anyMatch(t -> t.tokenNanos.size() < 72)) Thread.sleep(1);
      long steps = engine.stats().numSteps() - steps0;
      double stepMs = (engine.stats().stepNanos() - step0) / 1e6 / steps;
      double modelMs = (engine.stats().modelNanos() - model0) / 1e6 / steps;
      System.out.printf(Locale.ROOT, "%nscheduler overhead with 64 running sequences, %s: %.3f ms of a %.2f ms step = %.2f%% (%d decode steps)%n",
          greedy ? "greedy" : "temperature 0.8, top-p 0.95", stepMs - modelMs, stepMs, 100 * (stepMs - modelMs) / stepMs, steps);
      for (int i = 0; i < 64; i++) engine.abort("job-" + (7000 + i));
    }
  }

  private static Timing submit(Engine engine, Job job, ModelSpec spec) {
    return submit(engine, job, spec, System.nanoTime());
  }

  private static Timing submit(Engine engine, Job job, ModelSpec spec, long arrivalNanos) {
    return submit(engine, job, spec, arrivalNanos, false);
  }

  private static Timing submit(Engine engine, Job job, ModelSpec spec, long arrivalNanos, boolean greedy) {
    SplittableRandom random = new SplittableRandom(job.seed());
    int[] prompt = new int[job.promptTokens()];
    prompt[0] = spec.specialTokens().bos();
    for (int i = 1; i < prompt.length; i++) prompt[i] = 5 + random.nextInt(spec.vocabSize() - 5);
    SamplingParams params = SamplingParams.builder().maxTokens(job.outputTokens()).temperature(greedy ? 0f : 0.8f).topP(0.95f)
        .seed(job.seed()).ignoreEos(true).build();
    Timing timing = new Timing(arrivalNanos);
    Engine.Admission admission = engine.submit(new EngineRequest("job-" + job.seed(), prompt, null, 0, params, 0, Long.MAX_VALUE, null, timing));
    if (!(admission instanceof Engine.Admission.Accepted)) throw new IllegalStateException("refused: " + admission);
    return timing;
  }

  /** Poisson arrivals at {@code rate}/s, prompts uniform in [32, 512], outputs log-normal (median 64) capped at 512. */
  private static List<Job> workload(int n, double rate, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    List<Job> jobs = new ArrayList<>();
    double t = 0;
    for (int i = 0; i < n; i++) {
      t += -Math.log(1 - random.nextDouble()) / rate;
      int prompt = 32 + random.nextInt(481);
      int output = (int) Math.max(1, Math.min(512, Math.round(Math.exp(Math.log(64) + 1.0 * random.nextGaussian()))));
      jobs.add(new Job(t, prompt, output, i));
    }
    return jobs;
  }

  private static void sleepUntil(long nanos) throws InterruptedException {
    long wait = nanos - System.nanoTime();
    if (wait > 0) TimeUnit.NANOSECONDS.sleep(wait);
  }

  private static double percentile(double[] values, int p) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    return sorted[Math.min(sorted.length - 1, Math.max(0, (int) Math.ceil(p / 100.0 * sorted.length) - 1))];
  }

  private static int median(int[] values) {
    int[] sorted = values.clone();
    Arrays.sort(sorted);
    return sorted[sorted.length / 2];
  }
}
