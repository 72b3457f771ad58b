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

  /** A step's sampled rows: row i has a token, or the error that made its row unusable. */
  record Rows(SampledToken[] tokens, RuntimeException[] errors) {
    SampledToken token(int row) {
      return tokens[row];
    }

    RuntimeException error(int row) {
      return errors[row];
    }
  }

  /**
   * @param rowSize floats per logits row (the model's vocabulary)
   * @param numSampleable ids that may be sampled, {@code [0, numSampleable)}: the tokenizer's vocabulary when
   *     the model's rows are longer (padded to a round size), so that an id the tokenizer cannot turn into text
   *     is never chosen
   * @param numThreads threads that sample, the caller's included
   */
  ParallelSampler(int rowSize, int numSampleable, int numThreads) {
    if (numThreads < 1) throw new IllegalArgumentException("numThreads must be >= 1");
    if (numSampleable < 1 || numSampleable > rowSize) {
      throw new IllegalArgumentException("numSampleable must be in [1, " + rowSize + "], was " + numSampleable);
    }
    samplers = new Sampler[numThreads];
    rows = new float[numThreads][rowSize];
    for (int i = 0; i < numThreads; i++) samplers[i] = new Sampler(numSampleable);
    helpers = numThreads == 1 ? null : Executors.newFixedThreadPool(numThreads - 1,
        Thread.ofPlatform().name("sphinx-sampler-", 0).daemon(true).factory());
  }

  /**
   * Samples row i of {@code output} for {@code states.get(i)}. A row that cannot be sampled (NaN or +Infinity
   * logits, nothing left after masking) gets its error instead of a token; the other rows are unaffected.
   */
  Rows sampleAll(StepOutput output, List<SamplingState> states) {
    int n = states.size();
    Rows results = new Rows(new SampledToken[n], new RuntimeException[n]);
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
  private void sampleRange(int worker, StepOutput output, List<SamplingState> states, Rows results, AtomicInteger next) {
    float[] logits = rows[worker];
    for (int i; (i = next.getAndIncrement()) < states.size(); ) {
      try {
        output.copyRow(i, logits);
        results.tokens[i] = samplers[worker].sample(logits, states.get(i));
      } catch (RuntimeException e) {
        results.errors[i] = e;
      }
    }
  }

  @Override
  public void close() {
    if (helpers != null) helpers.shutdownNow();
  }
}
