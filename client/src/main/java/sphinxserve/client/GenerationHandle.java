package sphinxserve.client;

import java.util.concurrent.CompletableFuture;

/** A generation in flight: cancel it, or wait for its answer. */
public interface GenerationHandle {
  /** Cancels the generation; the node aborts it and frees its resources. No callbacks follow. */
  void cancel();

  /**
   * The answer when the stream completes; completes exceptionally with the stream's error, or with a
   * {@link java.util.concurrent.CancellationException} after {@link #cancel()}.
   */
  CompletableFuture<Answer> answer();
}
