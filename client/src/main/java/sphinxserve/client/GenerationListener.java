package sphinxserve.client;

import dev.sphinxserve.proto.v1.GenerateResponse;

/**
 * Callbacks for one streamed generation, called one at a time on a gRPC thread: {@code onResponse} for each message,
 * then exactly one of {@code onComplete} or {@code onError} (none after a cancel).
 */
public interface GenerationListener {
  /** A message from the node; {@link GenerateResponse#getText()} is the text added since the previous one. */
  default void onResponse(GenerateResponse response) {}

  /** The stream ended normally; the answer holds the whole text. */
  default void onComplete(Answer answer) {}

  /** The generation failed, usually with an {@link io.grpc.StatusRuntimeException}. */
  default void onError(Throwable error) {}
}
