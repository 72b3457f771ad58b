package sphinxserve.api;

/**
 * Logits from one decoder step, one row per {@link SequenceStep} that asked for them, in the step's order.
 * Valid only until the next call of {@link ModelRuntime#step}: runtimes reuse the memory.
 */
public interface StepOutput {

  /** Rows present: the number of sequence steps with {@code wantLogits}. */
  int numRows();

  /** Floats per row. */
  int vocabSize();

  /** Copies row {@code row} into {@code dst[0, vocabSize)}. */
  void copyRow(int row, float[] dst);

  /** One logit, for spot reads (logprobs of a chosen token). */
  float logit(int row, int tokenId);
}
