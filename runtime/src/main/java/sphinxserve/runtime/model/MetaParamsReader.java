package sphinxserve.runtime.model;

import java.nio.file.Path;
import java.util.List;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.DecoderVariant;

/**
 * Reads Meta's {@code params.json} (LLaMA-2 as LLaMA2-Accessory and SPHINX save it, and what
 * {@code tools/sphinx_export} writes). Meta omits what its code derives, so: the vocabulary comes from
 * {@code tok_embeddings} when {@code vocab_size} is -1, the MLP width from {@code w1} (checked against
 * {@code multiple_of} / {@code ffn_dim_multiplier} when given), and the context from {@code max_seq_len} or the
 * operator's {@code --max-context} (the checkpoint does not record the one it was trained at).
 */
final class MetaParamsReader {

  static final String PARAMS = "params.json";

  private MetaParamsReader() {}

  /**
   * @param embeddingRows rows of {@code tok_embeddings.weight}
   * @param mlpWidth rows of {@code layers.0.feed_forward.w1.weight}
   */
  static LlamaConfig read(Path dir, long embeddingRows, long mlpWidth, int maxContext, int bos, List<Integer> eos) {
    Path file = dir.resolve(PARAMS);
    JsonFiles.Fields f = new JsonFiles.Fields(file, JsonFiles.read(file));
    int dim = f.requiredInt("dim");
    int layers = f.requiredInt("n_layers");
    int heads = f.requiredInt("n_heads");
    int kvHeads = f.optionalInt("n_kv_heads", heads);
    double eps = f.requiredDouble("norm_eps");
    double theta = f.optionalDouble("rope_theta", 10000.0);
    int vocab = f.optionalInt("vocab_size", -1);
    if (dim <= 0 || layers <= 0 || heads <= 0) throw f.error("dim/n_layers/n_heads", "must be positive");
    if (kvHeads <= 0 || heads % kvHeads != 0) throw f.error("n_kv_heads", "(" + kvHeads + ") must divide n_heads (" + heads + ")");
    if (dim % heads != 0 || (dim / heads) % 2 != 0) throw f.error("dim", "(" + dim + ") must be n_heads × an even head width");
    if (vocab == -1) vocab = Math.toIntExact(embeddingRows);
    if (vocab != embeddingRows) throw f.error("vocab_size", vocab + " disagrees with tok_embeddings.weight's " + embeddingRows + " rows");
    if (f.has("multiple_of")) {
      int expected = metaMlpWidth(dim, f.requiredInt("multiple_of"), f.has("ffn_dim_multiplier") ? f.requiredDouble("ffn_dim_multiplier") : null);
      if (expected != mlpWidth) {
        throw f.error("multiple_of/ffn_dim_multiplier", "give an MLP width of " + expected + " but layers.0.feed_forward.w1.weight has " + mlpWidth + " rows");
      }
    }
    int context = f.optionalInt("max_seq_len", 0);
    if (maxContext > 0) {
      if (context > 0 && maxContext > context) throw new BundleException("--max-context " + maxContext + " exceeds " + file + "'s max_seq_len " + context);
      context = maxContext;
    }
    if (context <= 0) throw f.error("max_seq_len", "is missing: Meta checkpoints do not record their context; pass --max-context N");
    for (int id : eos) {
      if (id < 0 || id >= vocab) throw new BundleException(dir + ": EOS id " + id + " lies outside the vocabulary of " + vocab);
    }
    if (bos < 0 || bos >= vocab) throw new BundleException(dir + ": BOS id " + bos + " lies outside the vocabulary of " + vocab);
    DecoderShape shape = new DecoderShape(vocab, dim, layers, heads, kvHeads, dim / heads, Math.toIntExact(mlpWidth), context, theta, (float) eps);
    return new LlamaConfig(CheckpointLayout.META, shape, DecoderVariant.LLAMA2, bos, eos, eos.get(0));
  }

  /** Meta's {@code FeedForward} width: {@code 2·4·dim/3}, times the multiplier, rounded up to {@code multiple_of}. */
  static int metaMlpWidth(int dim, int multipleOf, Double ffnDimMultiplier) {
    int hidden = 8 * dim / 3; // Python's int(2 * hidden / 3) with hidden = 4·dim, truncated like int()
    if (ffnDimMultiplier != null) hidden = (int) (ffnDimMultiplier * hidden);
    return multipleOf * ((hidden + multipleOf - 1) / multipleOf);
  }
}
