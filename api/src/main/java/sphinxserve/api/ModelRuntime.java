package sphinxserve.api;

import java.util.List;

/**
 * The SPI through which the scheduler executes the model. One implementation per backend (ONNX Runtime in
 * {@code runtime/}); scheduler unit tests use a scripted fake, the only fake the design allows.
 *
 * <p>Threading: {@link #step} is called from the engine thread only, one call at a time, and reads and
 * writes the KV storage the runtime was built over; the scheduler never mutates block contents while a
 * step runs. {@link #encodeImages} may be called from any thread, concurrently with {@code step}.
 *
 * <p>KV contract: every position of every chunk must be covered by the sequence's block table; the runtime
 * writes the chunk's keys and values into those slots before attending, so a chunk attends to itself
 * causally and to everything cached before it. Blocks are never freed or reused while a step runs.
 */
public interface ModelRuntime extends AutoCloseable {

  /** The served model. */
  ModelSpec spec();

  /** The bundle's tokenizer. */
  TextTokenizer tokenizer();

  /**
   * Runs the vision encoder over {@code numViews} preprocessed views.
   *
   * @param pixels {@code [numViews, 3, viewSize, viewSize]} normalised floats, row-major
   * @return {@code [numViews * tokensPerView, hiddenSize]} floats, view after view
   */
  float[] encodeViews(float[] pixels, int numViews);

  /** Runs one decoder step over a ragged batch; the list's order fixes the order of the logits rows. */
  StepOutput step(List<SequenceStep> batch);

  /** Releases native resources; idempotent. */
  @Override
  void close();
}
