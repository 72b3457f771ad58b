package sphinxserve.api;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;

/**
 * How one request's tokens are chosen and when its answer ends. Field names follow the public
 * {@code sphinx.v1.SamplingParams} message; defaults and semantics follow vLLM's {@code SamplingParams}.
 * Immutable and validated on construction: every violation throws {@link IllegalArgumentException} whose
 * message names the public field, e.g. {@code "sampling.top_p must be in (0, 1]"}.
 *
 * <p>Semantics in the order they are applied to a logits row: the logit bias (added to the listed ids: OpenAI /
 * vLLM, which apply it before penalties); repetition penalty over prompt and generated
 * tokens (positive logits divided by it, negative ones multiplied: Hugging Face / vLLM); frequency and
 * presence penalties over generated tokens only ({@code logit -= count * frequency + (count > 0) * presence}:
 * OpenAI / vLLM); EOS and stop ids masked until {@code minTokens} tokens were generated; then greedy argmax
 * when {@code temperature == 0}, otherwise temperature, min-p, top-k, top-p, and a draw.
 *
 * @param maxTokens most tokens to generate, at least 1
 * @param temperature 0 (below {@link #GREEDY_TEMPERATURE}) for greedy decoding, otherwise the softmax temperature
 * @param topP nucleus mass in (0, 1]; 1 keeps every token
 * @param topK keep only the k most likely tokens; 0 or -1 turns it off
 * @param minP drop tokens whose probability is below {@code minP} times the most likely token's; 0 turns it off
 * @param repetitionPenalty &gt; 0; 1 turns it off
 * @param presencePenalty in [-2, 2], subtracted once from every token already generated
 * @param frequencyPenalty in [-2, 2], subtracted once per earlier occurrence in the generated tokens
 * @param seed seeds the request's own random generator, so equal seeds give equal tokens; empty: random
 * @param stop strings that end the answer; the matched string and anything after it are not returned
 * @param stopTokenIds token ids that end the answer in addition to EOS; the id itself is not detokenised
 * @param ignoreEos keep generating after EOS (benchmarks)
 * @param minTokens EOS and stop ids are masked until this many tokens were generated; at most {@code maxTokens}
 * @param logprobs how many most likely alternatives to return per token, 0 to {@link #MAX_LOGPROBS}; 0 turns
 *     logprobs off
 * @param logitBias added to the logits of these token ids before anything else; each in
 *     [-{@link #MAX_ABS_LOGIT_BIAS}, {@link #MAX_ABS_LOGIT_BIAS}] (ids outside the vocabulary are the caller's to refuse)
 */
public record SamplingParams(
    int maxTokens,
    float temperature,
    float topP,
    int topK,
    float minP,
    float repetitionPenalty,
    float presencePenalty,
    float frequencyPenalty,
    OptionalLong seed,
    List<String> stop,
    List<Integer> stopTokenIds,
    boolean ignoreEos,
    int minTokens,
    int logprobs,
    Map<Integer, Float> logitBias) {

  /** vLLM's default {@code max_tokens}. */
  public static final int DEFAULT_MAX_TOKENS = 16;

  /** Largest {@code logprobs} accepted (vLLM's default {@code max_logprobs}). */
  public static final int MAX_LOGPROBS = 20;

  /** Temperatures below this count as greedy (vLLM's {@code _SAMPLING_EPS}). */
  public static final float GREEDY_TEMPERATURE = 1e-5f;

  /** Largest absolute logit bias (OpenAI's range: -100 in effect bans a token, +100 in effect forces it). */
  public static final float MAX_ABS_LOGIT_BIAS = 100f;

  /** Largest absolute presence or frequency penalty (OpenAI's range). */
  public static final float MAX_ABS_PENALTY = 2f;

  private static final SamplingParams DEFAULTS = new Builder().build();

  public SamplingParams {
    Objects.requireNonNull(seed, "sampling.seed");
    stop = List.copyOf(Objects.requireNonNull(stop, "sampling.stop"));
    stopTokenIds = List.copyOf(Objects.requireNonNull(stopTokenIds, "sampling.stop_token_ids"));
    logitBias = Map.copyOf(Objects.requireNonNull(logitBias, "sampling.logit_bias"));
    check(maxTokens >= 1, "sampling.max_tokens must be at least 1, was " + maxTokens);
    check(Float.isFinite(temperature) && temperature >= 0, "sampling.temperature must be finite and >= 0, was " + temperature);
    check(topP > 0 && topP <= 1, "sampling.top_p must be in (0, 1], was " + topP);
    check(topK >= -1, "sampling.top_k must be -1 or 0 (off) or at least 1, was " + topK);
    check(minP >= 0 && minP <= 1, "sampling.min_p must be in [0, 1], was " + minP);
    check(Float.isFinite(repetitionPenalty) && repetitionPenalty > 0,
        "sampling.repetition_penalty must be finite and > 0, was " + repetitionPenalty);
    check(Math.abs(presencePenalty) <= MAX_ABS_PENALTY, "sampling.presence_penalty must be in [-2, 2], was " + presencePenalty);
    check(Math.abs(frequencyPenalty) <= MAX_ABS_PENALTY, "sampling.frequency_penalty must be in [-2, 2], was " + frequencyPenalty);
    for (String s : stop) check(!s.isEmpty(), "sampling.stop must not contain an empty string");
    for (int id : stopTokenIds) check(id >= 0, "sampling.stop_token_ids must be >= 0, was " + id);
    check(minTokens >= 0 && minTokens <= maxTokens,
        "sampling.min_tokens must be in [0, max_tokens=" + maxTokens + "], was " + minTokens);
    check(logprobs >= 0 && logprobs <= MAX_LOGPROBS, "sampling.logprobs must be in [0, " + MAX_LOGPROBS + "], was " + logprobs);
    for (Map.Entry<Integer, Float> bias : logitBias.entrySet()) {
      check(bias.getKey() >= 0, "sampling.logit_bias." + bias.getKey() + " must be a token id >= 0");
      check(Math.abs(bias.getValue()) <= MAX_ABS_LOGIT_BIAS, "sampling.logit_bias." + bias.getKey() + " must be in [-"
          + MAX_ABS_LOGIT_BIAS + ", " + MAX_ABS_LOGIT_BIAS + "], was " + bias.getValue()); // also refuses NaN
    }
  }

  /** vLLM's defaults: 16 tokens, temperature 1, no truncation, no penalties, unseeded, no stops. */
  public static SamplingParams defaults() {
    return DEFAULTS;
  }

  /** A builder starting from {@link #defaults()}. */
  public static Builder builder() {
    return new Builder();
  }

  /** A builder starting from these parameters. */
  public Builder toBuilder() {
    return new Builder(this);
  }

  /** Whether tokens are chosen by argmax: temperature below {@link #GREEDY_TEMPERATURE}, as in vLLM. */
  public boolean isGreedy() {
    return temperature < GREEDY_TEMPERATURE;
  }

  /** Whether top-k truncation is on. */
  public boolean hasTopK() {
    return topK > 0;
  }

  /** Whether any of the repetition, presence or frequency penalties is on. */
  public boolean hasPenalties() {
    return repetitionPenalty != 1f || presencePenalty != 0f || frequencyPenalty != 0f;
  }

  private static void check(boolean ok, String message) {
    if (!ok) throw new IllegalArgumentException(message);
  }

  /** Mutable builder; {@link #build()} validates. Not thread-safe. */
  public static final class Builder {
    private int maxTokens = DEFAULT_MAX_TOKENS;
    private float temperature = 1f;
    private float topP = 1f;
    private int topK = 0;
    private float minP = 0f;
    private float repetitionPenalty = 1f;
    private float presencePenalty = 0f;
    private float frequencyPenalty = 0f;
    private OptionalLong seed = OptionalLong.empty();
    private List<String> stop = List.of();
    private List<Integer> stopTokenIds = List.of();
    private boolean ignoreEos = false;
    private int minTokens = 0;
    private int logprobs = 0;
    private Map<Integer, Float> logitBias = Map.of();

    private Builder() {}

    private Builder(SamplingParams p) {
      maxTokens = p.maxTokens;
      temperature = p.temperature;
      topP = p.topP;
      topK = p.topK;
      minP = p.minP;
      repetitionPenalty = p.repetitionPenalty;
      presencePenalty = p.presencePenalty;
      frequencyPenalty = p.frequencyPenalty;
      seed = p.seed;
      stop = p.stop;
      stopTokenIds = p.stopTokenIds;
      ignoreEos = p.ignoreEos;
      minTokens = p.minTokens;
      logprobs = p.logprobs;
      logitBias = p.logitBias;
    }

    /** Sets {@code max_tokens}. */
    public Builder maxTokens(int v) { maxTokens = v; return this; }

    /** Sets {@code temperature}; 0 means greedy. */
    public Builder temperature(float v) { temperature = v; return this; }

    /** Sets {@code top_p}. */
    public Builder topP(float v) { topP = v; return this; }

    /** Sets {@code top_k}; 0 or -1 turns it off. */
    public Builder topK(int v) { topK = v; return this; }

    /** Sets {@code min_p}. */
    public Builder minP(float v) { minP = v; return this; }

    /** Sets {@code repetition_penalty}. */
    public Builder repetitionPenalty(float v) { repetitionPenalty = v; return this; }

    /** Sets {@code presence_penalty}. */
    public Builder presencePenalty(float v) { presencePenalty = v; return this; }

    /** Sets {@code frequency_penalty}. */
    public Builder frequencyPenalty(float v) { frequencyPenalty = v; return this; }

    /** Sets {@code seed}. */
    public Builder seed(long v) { seed = OptionalLong.of(v); return this; }

    /** Clears {@code seed}: the request gets a random one. */
    public Builder noSeed() { seed = OptionalLong.empty(); return this; }

    /** Sets {@code stop}. */
    public Builder stop(List<String> v) { stop = v; return this; }

    /** Sets {@code stop_token_ids}. */
    public Builder stopTokenIds(List<Integer> v) { stopTokenIds = v; return this; }

    /** Sets {@code ignore_eos}. */
    public Builder ignoreEos(boolean v) { ignoreEos = v; return this; }

    /** Sets {@code min_tokens}. */
    public Builder minTokens(int v) { minTokens = v; return this; }

    /** Sets {@code logprobs}. */
    public Builder logprobs(int v) { logprobs = v; return this; }

    /** Sets {@code logit_bias}: token id → bias added to its logit. */
    public Builder logitBias(Map<Integer, Float> v) { logitBias = v; return this; }

    /** Validates and builds. */
    public SamplingParams build() {
      return new SamplingParams(maxTokens, temperature, topP, topK, minP, repetitionPenalty, presencePenalty,
          frequencyPenalty, seed, stop, stopTokenIds, ignoreEos, minTokens, logprobs, logitBias);
    }
  }
}
