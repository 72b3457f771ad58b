package sphinxserve.server.generate;

/**
 * What decodes a prepared request: the scheduler (continuous batching engine) behind the gRPC service.
 *
 * <p>Contract: {@link #submit} and {@link #abort} are called from gRPC threads and must not block (enqueue a
 * command for the engine thread). Every submitted request ends with exactly one terminal call on its sink:
 * a response with {@code finish_reason} set, or {@link GenerationSink#fail}. A refusal (queue full:
 * RESOURCE_EXHAUSTED; draining: UNAVAILABLE; cannot ever fit: INVALID_ARGUMENT) is a {@code fail}, possibly
 * from within {@code submit}.
 */
public interface GenerationBackend extends AutoCloseable {

  /** Queues {@code request}; its deltas and its end go to {@code sink}. */
  public void submit(PreparedRequest request, GenerationSink sink);

  /**
   * Aborts the request submitted with {@code sink} (client cancelled, deadline passed): its resources are
   * freed within one step and its sink gets an ABORTED / DEADLINE finish, or nothing more if the call is gone.
   * Keyed by the call's sink, not the request id, so two calls reusing one {@code request_id} never abort each
   * other. Unknown sinks are ignored.
   */
  public void abort(GenerationSink sink);

  /**
   * Completes, with the cause, if the backend can no longer serve (its engine failed): every live request has
   * then ended with INTERNAL and new ones are refused with UNAVAILABLE. The node reports NOT_SERVING, drains
   * and exits non-zero, so an orchestrator restarts it.
   */
  public java.util.concurrent.CompletionStage<Throwable> failure();

  /**
   * Stops admitting, fails what is still queued with UNAVAILABLE, stops the engine thread, waiting for the model
   * step in flight; idempotent. Check {@link #isStopped} before freeing the runtime or its KV storage.
   */
  @Override
  public void close();

  /**
   * Whether no model step runs any more and none will start, so the runtime and its KV storage may be freed; false
   * while a step outlives {@link #close}'s wait (it writes into that memory).
   */
  public boolean isStopped();
}
