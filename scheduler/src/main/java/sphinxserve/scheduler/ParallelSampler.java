package sphinxserve.scheduler;

import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.ArrayList;
import java.util.concurrent.ExecutionException;
import sphinxserve.api.StepOutput;

/**
 * Samples a step's logits rows on several cores. Between two model steps ONNX Runtime's threads are idle, so
 * the rows of a large batch are split among the engine thread and {@code numThreads − 1} helpers, each with
 * its own {@link Sampler} (scratch) and logits buffer. Only sampling runs in parallel: a worker reads its
 * requests' {@link SamplingState}s (distinct per row) and writes one result slot; every state change
 * (appending the token, emitting output) happens afterwards on the engine thread, in plan order. Results do
 * not depend on which thread sampled a row: each request draws from its own random stream.
 */
final class ParallelSampler implements AutoCloseable {

  /** Below this many rows per thread, handing work to other threads costs more than it saves. */
  private static final int MIN_ROWS_PER_THREAD = 4;

  private final Sampler[] samplers;
  private final float[][] rows;
  private final ExecutorService helpers;

  ParallelSampler(int vocabSize, int numThreads) {
    if (numThreads < 1) throw new IllegalArgumentException("numThreads must be >= 1");
    samplers = new Sampler[numThreads];
    rows = new float[numThreads][vocabSize];
    for (int i = 0; i < numThreads; i++) samplers[i] = new Sampler(vocabSize);
    helpers = numThreads == 1 ? null : Executors.newFixedThreadPool(numThreads - 1,
        Thread.ofPlatform().name("sphinx-sampler-", 0).daemon(true).factory());
  }

  /** Samples row i of {@code output} for {@code states.get(i)}; element i of the result is its token. */
  SampledToken[] sampleAll(StepOutput output, List<SamplingState> states) {
    int n = states.size();
    SampledToken[] results = new SampledToken[n];
    int threads = helpers == null ? 1 : Math.min(samplers.length, n / MIN_ROWS_PER_THREAD);
    if (threads <= 1) {
      sampleRange(0, output, states, results, new AtomicInteger());
      return results;
    }
    AtomicInteger next = new AtomicInteger();
    List<Future<?>> running = new ArrayList<>(threads - 1);
    for (int t = 1; t < threads; t++) {
      int worker = t;
      running.add(helpers.submit(() -> sampleRange(worker, output, states, results, next)));
    }
    sampleRange(0, output, states, results, next);
    for (Future<?> future : running) {
      try {
        future.get();
      } catch (ExecutionException e) {
        throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while sampling", e);
      }
    }
    return results;
  }

  /** Worker {@code worker} takes rows from the shared counter until none are left. */
  private void sampleRange(int worker, StepOutput output, List<SamplingState> states, SampledToken[] results, AtomicInteger next) {
    float[] logits = rows[worker];
    for (int i; (i = next.getAndIncrement()) < states.size(); ) {
      output.copyRow(i, logits);
      results[i] = samplers[worker].sample(logits, states.get(i));
    }
  }

  int vocabSize() {
    return rows[0].length;
  }

  @Override
  public void close() {
    if (helpers != null) helpers.shutdownNow();
  }
}
