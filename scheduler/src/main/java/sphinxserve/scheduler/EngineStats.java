package sphinxserve.scheduler;

import java.util.concurrent.atomic.LongAdder;

/**
 * Engine counters and gauges for observability, written on the engine thread and readable from any thread.
 * Per-request latencies are measured by the server from the call's arrival (it sees image encoding too).
 */
public final class EngineStats {

  private volatile int numRunning;
  private volatile int numWaiting;
  private volatile double kvUsage;
  private volatile int lastBatchSize;
  private final LongAdder numSteps = new LongAdder();
  private final LongAdder stepNanos = new LongAdder();
  private final LongAdder modelNanos = new LongAdder();
  private final LongAdder numPreemptions = new LongAdder();
  private final LongAdder numScheduledTokens = new LongAdder();
  private final LongAdder numGeneratedTokens = new LongAdder();
  private final LongAdder numPromptTokens = new LongAdder();
  private final LongAdder numFinished = new LongAdder();

  /** Requests in the running batch. */
  public int numRunning() {
    return numRunning;
  }

  /** Accepted requests waiting for admission. */
  public int numWaiting() {
    return numWaiting;
  }

  /** Fraction of KV blocks in use, 0–1. */
  public double kvUsage() {
    return kvUsage;
  }

  public int lastBatchSize() {
    return lastBatchSize;
  }

  public long numSteps() {
    return numSteps.sum();
  }

  /** Nanoseconds of whole engine steps (planning, model, sampling, output). */
  public long stepNanos() {
    return stepNanos.sum();
  }

  /** Nanoseconds inside {@code ModelRuntime.step}. */
  public long modelNanos() {
    return modelNanos.sum();
  }

  public long numPreemptions() {
    return numPreemptions.sum();
  }

  /** Tokens computed by steps (prefill chunks and decodes). */
  public long numScheduledTokens() {
    return numScheduledTokens.sum();
  }

  public long numGeneratedTokens() {
    return numGeneratedTokens.sum();
  }

  /** Prompt tokens of accepted requests. */
  public long numPromptTokens() {
    return numPromptTokens.sum();
  }

  public long numFinished() {
    return numFinished.sum();
  }

  void publishCounts(int running, int waiting, double usage) {
    numRunning = running;
    numWaiting = waiting;
    kvUsage = usage;
  }

  void recordStep(long totalNanos, long modelNanosOfStep, int batchSize, int numTokens) {
    numSteps.increment();
    stepNanos.add(totalNanos);
    modelNanos.add(modelNanosOfStep);
    numScheduledTokens.add(numTokens);
    lastBatchSize = batchSize;
  }

  void recordPreemption() {
    numPreemptions.increment();
  }

  void recordGeneratedToken() {
    numGeneratedTokens.increment();
  }

  void recordAccepted(int promptTokens) {
    numPromptTokens.add(promptTokens);
  }

  void recordFinished() {
    numFinished.increment();
  }
}
