package sphinxserve.server.generate;

import dev.sphinxserve.proto.v1.GenerateResponse;
import io.grpc.Status;

/**
 * Where a request's output goes. Implementations never block and never call into gRPC on the caller's
 * thread: the engine thread emits and moves on (the node's sink buffers and writes from gRPC's side when the
 * transport is ready). Calls for one request come from one thread at a time.
 */
public interface GenerationSink {

  /** One streamed message; the one with {@code finish_reason} set (and {@code usage}) is the last. */
  public void emit(GenerateResponse response);

  /** Ends the request with an error instead; nothing may follow. */
  public void fail(Status status);

  /** Whether the client is gone (cancelled or past its deadline): emitting more is wasted work. */
  public boolean isCancelled();
}
