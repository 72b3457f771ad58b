package sphinxserve.server.grpc;

import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.util.concurrent.atomic.AtomicBoolean;
import sphinxserve.server.auth.Tenant;
import sphinxserve.server.auth.TenantLimiter;
import sphinxserve.server.auth.TenantLimiters;

/**
 * Applies the calling {@link Tenant}'s rate and stream limits ({@link TenantLimiter}) before the handler sees
 * the call; runs after {@link AuthInterceptor}, which names the tenant.
 *
 * <p>Every call takes a request permit; Generate also must not owe generated tokens and takes a stream permit,
 * returned when the call closes or is cancelled (once). The tokens of each {@code GenerateResponse} sent are
 * charged to the tenant's token limiter. A refusal closes the call with RESOURCE_EXHAUSTED and the trailer
 * {@value #RETRY_AFTER_NAME}: milliseconds after which a retry may succeed. Limits on a request's content
 * ({@code max-tokens}, {@code max-image-bytes}) are checked by {@link SphinxService}, which sees the message.
 */
public final class LimitInterceptor implements ServerInterceptor {

  /** The trailer's name. */
  static final String RETRY_AFTER_NAME = "retry-after-ms";

  /** Trailer: when a refused call may be retried, in milliseconds. */
  public static final Metadata.Key<String> RETRY_AFTER = Metadata.Key.of(RETRY_AFTER_NAME, Metadata.ASCII_STRING_MARSHALLER);

  private final TenantLimiters limiters;

  public LimitInterceptor(TenantLimiters limiters) {
    this.limiters = limiters;
  }

  @Override
  public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(ServerCall<ReqT, RespT> call, Metadata headers,
      ServerCallHandler<ReqT, RespT> next) {
    Tenant tenant = Tenant.current();
    TenantLimiter limiter = limiters.of(tenant);
    if (limiter == null) return next.startCall(call, headers);
    TenantLimiter.Refusal refusal = limiter.admitRequest();
    boolean stream = call.getMethodDescriptor().getFullMethodName().equals(SphinxGrpc.getGenerateMethod().getFullMethodName());
    if (refusal == null && stream) refusal = limiter.admitStream();
    if (refusal != null) {
      Metadata trailers = new Metadata();
      trailers.put(RETRY_AFTER, Long.toString(refusal.retryAfterMillis()));
      call.close(Status.RESOURCE_EXHAUSTED.withDescription(refusal.description()), trailers);
      return new ServerCall.Listener<>() {};
    }
    if (!stream) return next.startCall(call, headers);
    AtomicBoolean ended = new AtomicBoolean();
    Runnable end = () -> {
      if (ended.compareAndSet(false, true)) limiter.streamEnded();
    };
    ServerCall<ReqT, RespT> charging = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
      @Override
      public void sendMessage(RespT message) {
        if (message instanceof GenerateResponse r) limiter.chargeTokens(r.getTokenIdsCount());
        super.sendMessage(message);
      }

      @Override
      public void close(Status status, Metadata trailers) {
        end.run();
        super.close(status, trailers);
      }
    };
    ServerCall.Listener<ReqT> listener;
    try {
      listener = next.startCall(charging, headers);
    } catch (RuntimeException e) {
      end.run();
      throw e;
    }
    return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
      @Override
      public void onCancel() {
        end.run();
        super.onCancel();
      }

      @Override
      public void onComplete() {
        end.run();
        super.onComplete();
      }
    };
  }
}
