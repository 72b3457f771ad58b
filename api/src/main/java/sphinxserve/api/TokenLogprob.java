package sphinxserve.api;

/**
 * Log-probabilities for one generated token (log-softmax of the processed logits: after penalties and
 * temperature, before truncation).
 *
 * @param tokenId the chosen token
 * @param logprob its log-probability
 * @param topTokenIds the most likely tokens, most likely first
 * @param topLogprobs their log-probabilities
 */
public record TokenLogprob(int tokenId, float logprob, int[] topTokenIds, float[] topLogprobs) {}
