package sphinxserve.api;

import java.util.List;

/**
 * Receives one request's output. Both methods are called on the engine thread and <b>must not block</b>: an
 * implementation buffers (the node's {@code StreamSink} queues and drains from gRPC's side) and hands off to another thread. A sink
 * that throws from {@code onTokens} has its request aborted. The default methods are observability hooks, in the
 * order {@code onScheduled} (once, unless the request ends while waiting), {@code onTokens} and {@code onPreempted}
 * any number of times, {@code onFinish} once.
 */
public interface TokenSink {

  /**
   * New output: {@code text} holds only whole UTF-8 characters and never a possible beginning of a stop string;
   * {@code tokenIds} the tokens produced since the last call; {@code logprobs} one entry per token when asked.
   */
  void onTokens(String text, int[] tokenIds, List<TokenLogprob> logprobs);

  /** The last call for this request; {@code message} explains {@link FinishReason#ERROR} (else null). */
  void onFinish(FinishReason reason, Usage usage, String message);

  /**
   * The request left the waiting queue for the first time: its prefill starts in the coming step. An
   * observability hook (queue time, trace spans); like the others it must not block, and what it throws is
   * ignored.
   */
  default void onScheduled() {}

  /** The request was preempted: its KV blocks were freed and it waits to be recomputed. A hook, as {@link #onScheduled}. */
  default void onPreempted() {}
}
