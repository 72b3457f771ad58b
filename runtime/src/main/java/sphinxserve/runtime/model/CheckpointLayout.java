package sphinxserve.runtime.model;

/** How a checkpoint names its tensors and orders the rows of its query/key projections. */
public enum CheckpointLayout {
  /**
   * Hugging Face transformers' {@code LlamaForCausalLM}: {@code model.layers.N.self_attn.q_proj.weight}, ...;
   * q/k rows in rotate-half order (the conversion from Meta permutes them).
   */
  HUGGING_FACE,
  /**
   * Meta's and LLaMA2-Accessory's {@code layers.N.attention.wq.weight}, {@code feed_forward.w1}, ...; q/k rows
   * in interleaved-pair order (RoPE rotates dimensions 2i and 2i+1 together).
   */
  META
}
