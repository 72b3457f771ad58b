package sphinxserve.runtime.graph;

/**
 * What varies between LLaMA-family decoders of one {@link DecoderShape}: the graph writes the same step for all
 * and these choices into it.
 *
 * @param ropeScaling the rotary embedding's frequencies
 * @param tiedEmbeddings whether the output head is the embedding table ({@code tie_word_embeddings}): the graph
 *     then multiplies by {@code embed_tokens} transposed and there is no {@code lm_head} weight
 * @param attentionBias whether q/k/v/o projections have biases ({@code layers.N.q_proj.bias}, ...)
 * @param mlpBias whether gate/up/down projections have biases
 */
public record DecoderVariant(RopeScaling ropeScaling, boolean tiedEmbeddings, boolean attentionBias, boolean mlpBias) {

  /** SPHINX's LLaMA-2 decoder (and the builder's presets): no scaling, separate head, no biases. */
  public static final DecoderVariant LLAMA2 = new DecoderVariant(RopeScaling.NONE, false, false, false);
}
