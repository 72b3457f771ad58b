package sphinxserve.runtime.engine;

import java.util.concurrent.atomic.LongAdder;

/** Cumulative step timings, readable from any thread: how much of a step is ORT's run and how much ours. */
public final class StepTimer {

  private final LongAdder steps = new LongAdder();
  private final LongAdder prepareNanos = new LongAdder();
  private final LongAdder runNanos = new LongAdder();

  void record(long prepare, long run) {
    steps.increment();
    prepareNanos.add(prepare);
    runNanos.add(run);
  }

  public long steps() {
    return steps.sum();
  }

  /** Nanoseconds spent building inputs (everything before ORT's run). */
  public long prepareNanos() {
    return prepareNanos.sum();
  }

  /** Nanoseconds inside ORT's run. */
  public long runNanos() {
    return runNanos.sum();
  }

  public void reset() {
    steps.reset();
    prepareNanos.reset();
    runNanos.reset();
  }
}
