package sphinxserve.api;

import java.util.List;

/**
 * Token ids with a fixed meaning in a bundle's vocabulary.
 *
 * @param bos begins every sequence
 * @param eos ends an answer (the primary EOS)
 * @param pad padding, never generated
 * @param imagePlaceholder fills every image position of a prompt; the runtime replaces its embedding with
 *     the image's rows ({@code -1} for a text-only model)
 * @param eosIds every id that ends an answer, {@code eos} first (LLaMA-3 instruct models end turns with
 *     {@code <|eot_id|>} as well as {@code <|end_of_text|>})
 * @param addBos whether the tokenizer puts {@code bos} before a raw text (tokenizer_config.json's
 *     {@code add_bos_token}; LLaMA's and SPHINX's do): how {@code /v1/completions} tokenizes a prompt
 */
public record SpecialTokens(int bos, int eos, int pad, int imagePlaceholder, List<Integer> eosIds, boolean addBos) {

  public SpecialTokens {
    eosIds = List.copyOf(eosIds);
    if (eosIds.isEmpty() || eosIds.get(0) != eos) throw new IllegalArgumentException("eosIds must start with eos");
  }

  /** Several EOS ids; BOS added before raw text (LLaMA's tokenizers). */
  public SpecialTokens(int bos, int eos, int pad, int imagePlaceholder, List<Integer> eosIds) {
    this(bos, eos, pad, imagePlaceholder, eosIds, true);
  }

  /** One EOS id; BOS added before raw text. */
  public SpecialTokens(int bos, int eos, int pad, int imagePlaceholder) {
    this(bos, eos, pad, imagePlaceholder, List.of(eos));
  }
}
