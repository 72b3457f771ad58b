package sphinxserve.api;

import java.util.List;

/**
 * Receives one request's output. Both methods are called on the engine thread and <b>must not block</b>: an
 * implementation buffers (see the scheduler's {@code DeltaBuffer}) and hands off to another thread. A sink
 * that throws has its request aborted.
 */
public interface TokenSink {

  /**
   * New output: {@code text} holds only whole UTF-8 characters and never a possible beginning of a stop string;
   * {@code tokenIds} the tokens produced since the last call; {@code logprobs} one entry per token when asked.
   */
  void onTokens(String text, int[] tokenIds, List<TokenLogprob> logprobs);

  /** The last call for this request; {@code message} explains {@link FinishReason#ERROR} (else null). */
  void onFinish(FinishReason reason, Usage usage, String message);
}
