package sphinxserve.runtime.model;

import java.util.List;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.DecoderVariant;

/**
 * A LLaMA-family decoder as its checkpoint describes it, in either tensor layout.
 *
 * @param layout how the checkpoint names and orders its tensors
 * @param shape the sizes (max context as served: the model's own, or less when the operator asks)
 * @param variant rope scaling, tied embeddings, biases
 * @param bosId begins every sequence
 * @param eosIds every id that ends an answer (Hugging Face's {@code eos_token_id} may be a list); the first is the
 *     primary one
 * @param padId padding id ({@code pad_token_id}, else the first EOS)
 */
public record LlamaConfig(CheckpointLayout layout, DecoderShape shape, DecoderVariant variant, int bosId,
    List<Integer> eosIds, int padId) {

  public LlamaConfig {
    eosIds = List.copyOf(eosIds);
    if (eosIds.isEmpty()) throw new IllegalArgumentException("a model needs at least one EOS id");
  }
}
