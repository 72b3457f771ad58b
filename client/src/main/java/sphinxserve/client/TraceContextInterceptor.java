package sphinxserve.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapSetter;

/**
 * Sends the caller's trace context with every call: W3C {@code traceparent} (and {@code tracestate}) headers from
 * the OpenTelemetry {@link Context} current when the call starts, so the node's server span joins the caller's
 * trace. Without a current span nothing is sent. Needs only the OpenTelemetry API; the caller's SDK (or agent)
 * decides what a span is.
 */
final class TraceContextInterceptor implements ClientInterceptor {

  /** Writes propagation headers into gRPC metadata (ASCII keys). */
  private static final TextMapSetter<Metadata> HEADERS = (carrier, key, value) -> {
    if (carrier != null) carrier.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);
  };

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(MethodDescriptor<ReqT, RespT> method, CallOptions options,
      Channel next) {
    return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
      @Override
      public void start(Listener<RespT> listener, Metadata headers) {
        W3CTraceContextPropagator.getInstance().inject(Context.current(), headers, HEADERS);
        super.start(listener, headers);
      }
    };
  }
}
