package sphinxserve.server.grpc;

import io.grpc.Contexts;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapGetter;
import sphinxserve.server.telemetry.RequestTelemetry;
import sphinxserve.server.telemetry.Telemetry;

/**
 * Opens a server span per call, a child of the trace context the client sent (W3C {@code traceparent} /
 * {@code tracestate} by default; the SDK's configured propagators), and makes the call's
 * {@link RequestTelemetry} available to the handler through the gRPC {@code Context}. The span ends, and the
 * call's log line is written, when the call closes or is cancelled.
 */
public final class TracingInterceptor implements ServerInterceptor {

  /** Reads propagation headers from gRPC metadata (ASCII keys). */
  private static final TextMapGetter<Metadata> HEADERS = new TextMapGetter<>() {
    @Override
    public Iterable<String> keys(Metadata carrier) {
      return carrier.keys();
    }

    @Override
    public String get(Metadata carrier, String key) {
      if (carrier == null || key.endsWith(Metadata.BINARY_HEADER_SUFFIX)) return null;
      return carrier.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER));
    }
  };

  private final Telemetry telemetry;

  public TracingInterceptor(Telemetry telemetry) {
    this.telemetry = telemetry;
  }

  @Override
  public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(ServerCall<ReqT, RespT> call, Metadata headers,
      ServerCallHandler<ReqT, RespT> next) {
    long arrival = System.nanoTime();
    io.grpc.Deadline deadline = io.grpc.Context.current().getDeadline();
    String method = call.getMethodDescriptor().getFullMethodName();
    Context parent = telemetry.propagator().extract(Context.root(), headers, HEADERS);
    Span span = RequestTelemetry.serverSpan(telemetry, method, parent);
    RequestTelemetry request = new RequestTelemetry(telemetry, span, method, arrival);
    ServerCall<ReqT, RespT> closing = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
      @Override
      public void close(Status status, Metadata trailers) {
        request.closed(status);
        super.close(status, trailers);
      }
    };
    ServerCall.Listener<ReqT> listener = Contexts.interceptCall(
        io.grpc.Context.current().withValue(RequestTelemetry.KEY, request), closing, headers, next);
    return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
      @Override
      public void onCancel() {
        request.closed(deadline != null && deadline.isExpired() ? Status.DEADLINE_EXCEEDED : Status.CANCELLED);
        super.onCancel();
      }
    };
  }
}
