package sphinxserve.server;

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
  void submit(PreparedRequest request, GenerationSink sink);

  /**
   * Aborts request {@code requestId} (client cancelled, deadline passed): its resources are freed within one
   * step and its sink gets an ABORTED / DEADLINE finish or nothing more if the call is gone. Unknown ids are
   * ignored.
   */
  void abort(String requestId);

  /** Stops admitting, fails what is still queued with UNAVAILABLE, stops the engine thread; idempotent. */
  @Override
  void close();
}
