package sphinxserve.scheduler;

/**
 * What the engine's steps cost, learned from the steps it ran, so that prefill chunks can be sized to a latency
 * target for the streams that are decoding (stall-free batching, as in Sarathi-Serve). Confined to the engine
 * thread.
 *
 * <p>The runtime computes a step's decodes and its prefill chunks as separate runs, so a mixed step takes about
 * {@code decodeStep + prefillTokens × perPrefillToken}: the weights are read once per run and a prefill token's
 * cost is compute, near constant on a CPU once a chunk has more than a few dozen tokens. Prefill tokens here are
 * what the runtime computes: its prefill run pads every chunk to the longest ({@link PrefillRoom}). Both terms are
 * exponential moving averages of what recent steps took, whole-step time as a stream sees it (planning,
 * model, sampling, delivery), so the budget follows the contexts growing, the batch changing and the machine's
 * load without a profile per model or host.
 *
 * <p>Neither term depends on how many sequences decode: the decode term is the last decode-only steps' time.
 * That is coarse when a storm of prompts arrives into a batch whose size then changes, and averages aim a
 * step's mean at the target while a latency target is about the tail. So the budget also keeps off the target
 * by the recent overshoot: how far mixed steps ran past what the estimates predicted for them, a maximum that
 * decays by {@link #OVERSHOOT_DECAY} a step. In docs/PERFORMANCE.md's storm a 100 ms target gave ITL p99 135 ms
 * without the margin, 119 ms with it, 109 ms once prefill chunks were counted padded.
 */
final class StepCostModel {

  /** Weight of the newest observation in each average: about the last eight steps count. */
  static final double SMOOTHING = 0.25;
  /** A step with fewer prefill tokens says too little about their cost (its time is mostly the decodes'). */
  static final int MIN_PREFILL_SAMPLE = 16;
  /** Prefill tokens of a mixed step before any prefill cost is known: small, so the first sample is cheap. */
  static final int PROBE_TOKENS = 64;
  /** What is left of the largest recent overshoot after each further mixed step. */
  static final double OVERSHOOT_DECAY = 0.9;
  /**
   * Mixed steps after which a relative target wants a fresh decode-only step: under a steady stream of prompts
   * every step carries prefill, and the decode-only estimate a relative target scales would never be measured
   * (a node that starts under load) or would go stale while the batch grows. One step in this many without
   * prefill keeps it current at a negligible cost to prefill progress.
   */
  static final int MAX_MIXED_STEPS_PER_SAMPLE = 32;

  private double decodeStepNanos = Double.NaN;
  private double prefillTokenNanos = Double.NaN;
  private double overshootNanos;
  private int mixedStepsSinceDecodeOnly;

  /** Records a step that scheduled {@code numDecodes} decodes and {@code numPrefillTokens} (padded) prefill tokens. */
  void observe(int numDecodes, int numPrefillTokens, long stepNanos) {
    if (numPrefillTokens == 0) {
      if (numDecodes > 0) {
        decodeStepNanos = average(decodeStepNanos, stepNanos);
        mixedStepsSinceDecodeOnly = 0;
      }
      return;
    }
    if (numDecodes > 0) mixedStepsSinceDecodeOnly++;
    if (numPrefillTokens < MIN_PREFILL_SAMPLE) return;
    double decodePart = numDecodes == 0 || Double.isNaN(decodeStepNanos) ? 0 : decodeStepNanos;
    if (!Double.isNaN(prefillTokenNanos)) {
      double predicted = decodePart + numPrefillTokens * prefillTokenNanos;
      overshootNanos = Math.max(overshootNanos * OVERSHOOT_DECAY, stepNanos - predicted);
    }
    prefillTokenNanos = average(prefillTokenNanos, Math.max(0, stepNanos - decodePart) / numPrefillTokens);
  }

  /**
   * Prefill tokens a step that carries decodes may add and still take about {@code targetNanos}, less the recent
   * overshoot: between {@code floor} (prefills always progress, however tight the target) and {@code cap};
   * {@link #PROBE_TOKENS} (within those) while the prefill cost or the target (NaN: a relative target before a
   * decode-only step was measured) is unknown.
   */
  int prefillBudget(double targetNanos, int floor, int cap) {
    int least = Math.min(floor, cap);
    if (Double.isNaN(prefillTokenNanos) || Double.isNaN(targetNanos)) return Math.max(least, Math.min(PROBE_TOKENS, cap));
    double decode = Double.isNaN(decodeStepNanos) ? 0 : decodeStepNanos;
    double fits = (targetNanos - decode - overshootNanos) / Math.max(prefillTokenNanos, 1.0);
    return (int) Math.min(cap, Math.max(least, fits));
  }

  /**
   * Whether the next step that carries decodes should carry nothing else, for a relative target's decode-only
   * estimate: none was measured yet, or {@link #MAX_MIXED_STEPS_PER_SAMPLE} mixed steps ran since the last.
   */
  boolean wantsDecodeOnlySample() {
    return Double.isNaN(decodeStepNanos) || mixedStepsSinceDecodeOnly >= MAX_MIXED_STEPS_PER_SAMPLE;
  }

  /** The current decode-only step estimate, nanoseconds; NaN before one was seen. */
  double decodeStepNanos() {
    return decodeStepNanos;
  }

  /** How far recent mixed steps ran past their prediction (decaying maximum), nanoseconds; 0 when none did. */
  double overshootNanos() {
    return overshootNanos;
  }

  /** The current per-prefill-token estimate, nanoseconds; NaN before one was seen. */
  double prefillTokenNanos() {
    return prefillTokenNanos;
  }

  private static double average(double current, double sample) {
    return Double.isNaN(current) ? sample : current + SMOOTHING * (sample - current);
  }
}
