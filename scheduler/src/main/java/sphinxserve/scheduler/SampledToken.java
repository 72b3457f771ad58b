package sphinxserve.scheduler;

/**
 * The sampler's choice for one sequence in one step.
 *
 * <p>Log-probabilities are those of the model's own distribution: log-softmax of the raw logits, before the
 * penalties, the {@code min_tokens} mask, the temperature and any truncation (vLLM's default
 * {@code raw_logprobs}). They are computed only when the request asked for logprobs.
 *
 * @param tokenId the chosen token
 * @param logprob its log-probability, or {@code NaN} when the request did not ask for logprobs
 * @param topTokenIds the {@code logprobs} most likely token ids, most likely first (empty when not asked)
 * @param topLogprobs their log-probabilities, same order; owned by this value
 */
record SampledToken(int tokenId, float logprob, int[] topTokenIds, float[] topLogprobs) {

  private static final int[] NO_IDS = {};
  private static final float[] NO_LOGPROBS = {};

  /** A choice without logprobs. */
  static SampledToken of(int tokenId) {
    return new SampledToken(tokenId, Float.NaN, NO_IDS, NO_LOGPROBS);
  }
}
