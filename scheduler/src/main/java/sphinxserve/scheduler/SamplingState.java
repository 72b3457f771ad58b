package sphinxserve.scheduler;

import java.util.Arrays;
import java.util.BitSet;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.TokenConstraint;

/**
 * One request's sampling state: its parameters, its own random generator, and the token statistics the
 * penalties need, updated by {@link #append} as tokens are generated. Confined to the engine thread.
 */
final class SamplingState {
  /*
   * Penalty bookkeeping is incremental and sparse, so applying penalties costs O(distinct tokens seen), not
   * O(vocabulary), per step:
   *   - promptIds: a bitset of the prompt's distinct ids (built once; only if repetition_penalty != 1);
   *   - counts[id]: occurrences of id among generated tokens, plus generatedIds, the distinct generated
   *     ids in order of first appearance (appended when a count goes 0 -> 1); only if some penalty is on.
   * Nothing is ever rebuilt: a preempted request keeps this object, and recomputing its KV does not
   * sample, so the statistics and the random generator continue exactly where they were.
   *
   * The random generator is a SplittableRandom seeded from the request's seed (or a random seed) and used
   * only for this request's draws, one nextDouble() per non-greedy token, so a seed gives the same tokens
   * whatever else is in the batch.
   *
   * A constraint's matcher is created here, once, and lives as long as this object: like the random generator
   * it survives preemption, so a resumed request continues its grammar where it was. Its mask depends only on
   * this request's own tokens (batch invariance).
   */

  private final SamplingParams params;
  private final int vocabSize;
  private final long seed;
  private final SplittableRandom random;
  private final int[] stopIds;
  /** The logit bias as parallel arrays (ids inside the vocabulary only), so applying it allocates nothing. */
  private final int[] biasIds;
  private final float[] biases;
  /** The constraint's matcher; null when the request is unconstrained. */
  private final TokenConstraint.Matcher matcher;
  private final BitSet promptIds;
  private final int[] counts;
  private int[] generatedIds;
  private int numDistinctGenerated;
  private int numGenerated;

  /**
   * State for a new request.
   *
   * @param params the request's parameters
   * @param vocabSize rows of the logits; ids outside {@code [0, vocabSize)} are ignored
   * @param eosTokenIds the model's EOS ids; stop tokens unless {@code ignoreEos}
   * @param promptTokenIds the prompt's ids (image placeholders included), for the repetition penalty
   */
  SamplingState(SamplingParams params, int vocabSize, int eosTokenId, int[] promptTokenIds) {
    this(params, vocabSize, java.util.List.of(eosTokenId), promptTokenIds);
  }

  /** State for a new request of a model with several EOS ids. */
  SamplingState(SamplingParams params, int vocabSize, java.util.List<Integer> eosTokenIds, int[] promptTokenIds) {
    this.params = params;
    this.vocabSize = vocabSize;
    this.seed = params.seed().isPresent() ? params.seed().getAsLong() : ThreadLocalRandom.current().nextLong();
    this.random = new SplittableRandom(seed);
    this.stopIds = stopIds(params, eosTokenIds);
    int[] ids = params.logitBias().keySet().stream().mapToInt(Integer::intValue).filter(id -> id < vocabSize).sorted().toArray();
    this.biasIds = ids;
    this.biases = new float[ids.length];
    for (int k = 0; k < ids.length; k++) biases[k] = params.logitBias().get(ids[k]);
    this.matcher = params.constraint() == null ? null : params.constraint().newMatcher();
    if (params.repetitionPenalty() != 1f) {
      promptIds = new BitSet(vocabSize);
      for (int id : promptTokenIds) {
        if (id >= 0 && id < vocabSize) promptIds.set(id);
      }
    } else {
      promptIds = null;
    }
    this.counts = params.hasPenalties() ? new int[vocabSize] : null;
    this.generatedIds = params.hasPenalties() ? new int[16] : null;
  }

  private static int[] stopIds(SamplingParams params, java.util.List<Integer> eosTokenIds) {
    java.util.stream.IntStream ids = params.stopTokenIds().stream().mapToInt(Integer::intValue);
    if (!params.ignoreEos()) ids = java.util.stream.IntStream.concat(ids, eosTokenIds.stream().mapToInt(Integer::intValue));
    return ids.distinct().toArray();
  }

  /** The request's parameters. */
  SamplingParams params() {
    return params;
  }

  /** The seed in use: the request's, or the random one drawn for it (log it to reproduce a request). */
  long seed() {
    return seed;
  }

  /** The request's own random generator. */
  SplittableRandom random() {
    return random;
  }

  /** Tokens generated so far. */
  int numGenerated() {
    return numGenerated;
  }

  /** Whether {@code tokenId} ends the answer: EOS (unless {@code ignoreEos}) or one of {@code stopTokenIds}. */
  boolean isStopToken(int tokenId) {
    for (int id : stopIds) {
      if (id == tokenId) return true;
    }
    return false;
  }

  /**
   * Records a generated token; call once per token the sampler chose, before sampling the next one.
   *
   * @throws IllegalStateException when the request's constraint does not allow the token (the mask forbids
   *     that; only an EOS forced at a dead end of the grammar is let through)
   */
  void append(int tokenId) {
    if (matcher != null && !matcher.accept(tokenId) && !isStopToken(tokenId)) {
      throw new IllegalStateException("token " + tokenId + " is not allowed by the request's constraint");
    }
    numGenerated++;
    if (counts == null || tokenId < 0 || tokenId >= vocabSize) return;
    if (counts[tokenId]++ == 0) {
      if (numDistinctGenerated == generatedIds.length) generatedIds = Arrays.copyOf(generatedIds, 2 * generatedIds.length);
      generatedIds[numDistinctGenerated++] = tokenId;
    }
  }

  /** Occurrences of {@code tokenId} among the generated tokens (0 when no penalty is on: not tracked). */
  int count(int tokenId) {
    return counts == null ? 0 : counts[tokenId];
  }

  /** Adds the request's logit bias to {@code logits} in place (vLLM applies it before the penalties). */
  void applyLogitBias(float[] logits) {
    for (int k = 0; k < biasIds.length; k++) logits[biasIds[k]] += biases[k];
  }

  /**
   * Applies the repetition, frequency and presence penalties to {@code logits} in place, in vLLM's order;
   * touches only tokens seen in the prompt or the output.
   */
  void applyPenalties(float[] logits) {
    if (counts == null) return;
    float repetition = params.repetitionPenalty();
    if (repetition != 1f) {
      for (int id = promptIds.nextSetBit(0); id >= 0; id = promptIds.nextSetBit(id + 1)) {
        logits[id] = repeat(logits[id], repetition);
      }
      for (int k = 0; k < numDistinctGenerated; k++) {
        int id = generatedIds[k];
        if (!promptIds.get(id)) logits[id] = repeat(logits[id], repetition);
      }
    }
    float frequency = params.frequencyPenalty();
    float presence = params.presencePenalty();
    if (frequency != 0f || presence != 0f) {
      for (int k = 0; k < numDistinctGenerated; k++) {
        int id = generatedIds[k];
        logits[id] -= counts[id] * frequency + presence;
      }
    }
  }

  private static float repeat(float logit, float penalty) {
    return logit > 0 ? logit / penalty : logit * penalty;
  }

  /** The constraint's matcher, or null when the request has no constraint. */
  TokenConstraint.Matcher matcher() {
    return matcher;
  }

  /**
   * Sets to {@code -Infinity} every token the request's constraint does not allow next (nothing without a
   * constraint). Runs after {@link #applyMinTokens}, and wins over it: when the only allowed tokens are stop ids
   * that {@code min_tokens} masked (the grammar is complete and can go no further), they get logit 0, so the row
   * is never all {@code -Infinity}; where the grammar allows nothing at all (a dead end), the request fails
   * (IllegalStateException). Logprobs are unaffected: they come from the raw row.
   *
   * @param allowedBits scratch of at least {@code ceil(vocabSize / 64)} words
   */
  void applyConstraint(float[] logits, long[] allowedBits) {
    if (matcher == null) return;
    matcher.fillAllowed(allowedBits);
    boolean anyAllowed = false;
    boolean anyFinite = false;
    // Most masks are a few allowed tokens (JSON structure) or nearly everything (inside a string): a word with
    // no allowed token is a 64-float fill (the loop vectorises), a word with every token allowed writes nothing,
    // and only mixed words go bit by bit.
    for (int w = 0, numWords = (vocabSize + 63) >>> 6; w < numWords; w++) {
      long allowed = allowedBits[w];
      int base = w << 6;
      if (allowed == 0) {
        for (int i = base, end = Math.min(base + 64, vocabSize); i < end; i++) logits[i] = Float.NEGATIVE_INFINITY;
        continue;
      }
      anyAllowed = true;
      for (long bits = allowed; !anyFinite && bits != 0; bits &= bits - 1) {
        int id = base + Long.numberOfTrailingZeros(bits);
        anyFinite = id < vocabSize && logits[id] > Float.NEGATIVE_INFINITY;
      }
      if (allowed == -1L) continue;
      long denied = ~allowed;
      if (base + 64 > vocabSize) denied &= (1L << (vocabSize - base)) - 1;
      for (; denied != 0; denied &= denied - 1) logits[base + Long.numberOfTrailingZeros(denied)] = Float.NEGATIVE_INFINITY;
    }
    if (anyFinite) return;
    if (!anyAllowed) {
      // A dead end: no token continues the answer and it is not complete (a grammar with no way out, or one past the
      // matcher's depth or width limits). Ending it here would hand the client an answer outside the constraint as if
      // it were whole; the request fails instead (the scheduler ends only this row's request).
      throw new IllegalStateException("the output constraint reached a dead end: no token continues the answer and it is not complete");
    }
    for (int id : stopIds) { // min_tokens masked the only allowed tokens: the mask wins
      if (id >= 0 && id < vocabSize && (allowedBits[id >>> 6] >>> id & 1) != 0) logits[id] = 0f;
    }
  }

  /** Masks EOS and the stop ids to {@code -Infinity} while fewer than {@code minTokens} tokens were generated. */
  void applyMinTokens(float[] logits) {
    if (numGenerated >= params.minTokens()) return;
    for (int id : stopIds) {
      if (id >= 0 && id < vocabSize) logits[id] = Float.NEGATIVE_INFINITY;
    }
  }
}
