package sphinxserve.scheduler;

/**
 * Limits and policy knobs of the engine.
 *
 * @param maxNumSeqs most sequences in one step (running requests)
 * @param maxNumBatchedTokens token budget of one step: decodes (1 each) plus prefill chunks
 * @param maxWaiting most accepted requests waiting for admission; further submissions are refused
 * @param priorityAgingSeconds a waiting request gains one priority level per this many seconds waited, so
 *     low-priority work cannot starve under a steady stream of higher-priority work
 * @param admissionWatermark fraction of blocks kept free when admitting new requests, so that running
 *     decodes do not need to preempt right after an admission
 * @param samplingThreads threads that sample a step's rows (the engine thread included); the model's own
 *     threads are idle meanwhile, so one per core
 * @param itlTarget latency target of a step that carries decodes ({@link ItlTarget}): its prefill chunks are
 *     cut to what the measured step costs let fit ({@link StepCostModel}), so a storm of long prompts does not
 *     stretch the running streams' inter-token latency; {@link ItlTarget#OFF}: only {@code maxNumBatchedTokens}
 *     bounds a step
 */
public record EngineConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxWaiting, double priorityAgingSeconds,
    double admissionWatermark, int samplingThreads, ItlTarget itlTarget) {

  public EngineConfig {
    if (maxNumSeqs < 1) throw new IllegalArgumentException("maxNumSeqs must be >= 1");
    if (maxNumBatchedTokens < 1) throw new IllegalArgumentException("maxNumBatchedTokens must be >= 1");
    if (maxWaiting < 0) throw new IllegalArgumentException("maxWaiting must be >= 0");
    if (!(priorityAgingSeconds > 0)) throw new IllegalArgumentException("priorityAgingSeconds must be > 0");
    if (admissionWatermark < 0 || admissionWatermark >= 1) throw new IllegalArgumentException("admissionWatermark must be in [0, 1)");
    if (samplingThreads < 1) throw new IllegalArgumentException("samplingThreads must be >= 1");
    if (itlTarget == null) throw new IllegalArgumentException("itlTarget must be set (ItlTarget.OFF for none)");
  }

  /**
   * 64 sequences, 512 tokens per step, 256 waiting, +1 priority per 10 s waited, 1% watermark, a sampling thread
   * per core, no latency target (as the node's default). The budget bounds how long one step (hence every running decode) can take: on a 2-core CPU a
   * 512-token prefill chunk of the bench model costs about 0.35 s (docs/PERFORMANCE.md).
   */
  public static EngineConfig defaults() {
    return new EngineConfig(64, 512, 256, 10.0, 0.01, Runtime.getRuntime().availableProcessors(), ItlTarget.OFF);
  }

  public EngineConfig withMaxNumSeqs(int value) {
    return new EngineConfig(value, maxNumBatchedTokens, maxWaiting, priorityAgingSeconds, admissionWatermark, samplingThreads, itlTarget);
  }

  public EngineConfig withMaxNumBatchedTokens(int value) {
    return new EngineConfig(maxNumSeqs, value, maxWaiting, priorityAgingSeconds, admissionWatermark, samplingThreads, itlTarget);
  }

  public EngineConfig withMaxWaiting(int value) {
    return new EngineConfig(maxNumSeqs, maxNumBatchedTokens, value, priorityAgingSeconds, admissionWatermark, samplingThreads, itlTarget);
  }

  public EngineConfig withPriorityAgingSeconds(double value) {
    return new EngineConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting, value, admissionWatermark, samplingThreads, itlTarget);
  }

  public EngineConfig withSamplingThreads(int value) {
    return new EngineConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting, priorityAgingSeconds, admissionWatermark, value, itlTarget);
  }

  public EngineConfig withAdmissionWatermark(double value) {
    return new EngineConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting, priorityAgingSeconds, value, samplingThreads, itlTarget);
  }

  public EngineConfig withItlTarget(ItlTarget value) {
    return new EngineConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting, priorityAgingSeconds, admissionWatermark, samplingThreads, value);
  }
}
