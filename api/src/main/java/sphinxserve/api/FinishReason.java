package sphinxserve.api;

/** Why a request stopped generating. */
public enum FinishReason {
  /** EOS, a stop token or a stop string. */
  STOP,
  /** {@code max_tokens} or the model's context was reached. */
  LENGTH,
  /** Aborted by the caller (cancellation) or by the node (shutdown). */
  ABORTED,
  /** The request's deadline expired. */
  DEADLINE,
  /** The request failed inside the engine; the message says why. Other requests are unaffected. */
  ERROR
}
