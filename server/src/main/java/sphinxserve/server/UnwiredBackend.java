package sphinxserve.server;

import io.grpc.Status;

/** The backend until the scheduler is wired in: refuses every request with UNAVAILABLE, generates nothing. */
final class UnwiredBackend implements GenerationBackend {

  @Override
  public void submit(PreparedRequest request, GenerationSink sink) {
    sink.fail(Status.UNAVAILABLE.withDescription("generation engine not wired"));
  }

  @Override
  public void abort(GenerationSink sink) {}

  @Override
  public void close() {}
}
