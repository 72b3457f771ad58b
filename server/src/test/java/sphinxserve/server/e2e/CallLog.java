package sphinxserve.server.e2e;

import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import sphinxserve.server.testing.TestNode;

/**
 * Records every {@code Generate} call made over a channel: what it sent and how the node closed it. Put on the
 * channel handed to {@code SphinxClient.Builder.channel}, it shows each attempt of the client's logical calls
 * (retries, resends) and, by their absence, the calls an open circuit breaker never made.
 */
final class CallLog implements ClientInterceptor {

  /** One {@code Generate} attempt: the request sent and the status it closed with. */
  record Attempt(CompletableFuture<GenerateRequest> request, CompletableFuture<Status> status) {}

  private final List<Attempt> attempts = new CopyOnWriteArrayList<>();

  /** A plaintext channel to {@code node} recording its calls here; the caller shuts it down. */
  ManagedChannel channelTo(TestNode node) {
    return channelTo(node.port());
  }

  /** A plaintext channel to {@code 127.0.0.1:port} recording its calls here; the caller shuts it down. */
  ManagedChannel channelTo(int port) {
    return NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().intercept(this).build();
  }

  /** The attempts so far, oldest first. */
  List<Attempt> attempts() {
    return List.copyOf(attempts);
  }

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(MethodDescriptor<ReqT, RespT> method, CallOptions options,
      Channel next) {
    ClientCall<ReqT, RespT> call = next.newCall(method, options);
    if (!method.getFullMethodName().equals(SphinxGrpc.getGenerateMethod().getFullMethodName())) return call;
    Attempt attempt = new Attempt(new CompletableFuture<>(), new CompletableFuture<>());
    attempts.add(attempt);
    return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
      @Override
      public void start(Listener<RespT> listener, Metadata headers) {
        super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
          @Override
          public void onClose(Status status, Metadata trailers) {
            attempt.status().complete(status);
            super.onClose(status, trailers);
          }
        }, headers);
      }

      @Override
      public void sendMessage(ReqT message) {
        attempt.request().complete((GenerateRequest) message);
        super.sendMessage(message);
      }
    };
  }
}
