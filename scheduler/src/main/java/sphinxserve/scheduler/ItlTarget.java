package sphinxserve.scheduler;

/**
 * How long a step that carries decodes may take, so that prefill chunks beside the decodes are cut to fit it
 * (stall-free batching, as in Sarathi-Serve) and a storm of long prompts does not stretch the running streams'
 * inter-token latency. The prefill chunks' share is what the target leaves after the decodes by the measured
 * step costs ({@link StepCostModel}), at least a block, so prefills always progress.
 */
public sealed interface ItlTarget {

  /** No target: only the step's token budget bounds a step, so a step beside a long prompt takes its chunk's time. */
  ItlTarget OFF = new Off();

  /** A fixed time per step, for a deployment with a latency objective of its own. */
  static ItlTarget millis(int millis) {
    return new Fixed(millis);
  }

  /**
   * {@code stretch} times the measured decode-only step: the target follows the model, the batch and the
   * machine, and a decoding stream's latency grows by about that factor while prompts are being prefilled.
   */
  static ItlTarget relative(double stretch) {
    return new Relative(stretch);
  }

  /** The target for the next step, nanoseconds, given the decode-only step estimate (NaN while none was seen). */
  double nanos(double decodeStepNanos);

  /** No target. */
  record Off() implements ItlTarget {
    @Override
    public double nanos(double decodeStepNanos) {
      return Double.POSITIVE_INFINITY;
    }

    @Override
    public String toString() {
      return "off";
    }
  }

  /** A fixed target. */
  record Fixed(int millis) implements ItlTarget {
    public Fixed {
      if (millis < 1) throw new IllegalArgumentException("an ITL target must be >= 1 ms, or off");
    }

    @Override
    public double nanos(double decodeStepNanos) {
      return millis * 1e6;
    }

    @Override
    public String toString() {
      return millis + " ms";
    }
  }

  /**
   * A multiple of the decode-only step; NaN (no target known yet) before a decode-only step was measured. The
   * scheduler keeps that estimate fresh with a decode-only step now and then (StepCostModel).
   */
  record Relative(double stretch) implements ItlTarget {
    public Relative {
      if (!(stretch > 1) || stretch > 100) throw new IllegalArgumentException("a relative ITL target must be in (1, 100]");
    }

    @Override
    public double nanos(double decodeStepNanos) {
      return stretch * decodeStepNanos;
    }

    @Override
    public String toString() {
      return stretch + " x the decode step";
    }
  }
}
