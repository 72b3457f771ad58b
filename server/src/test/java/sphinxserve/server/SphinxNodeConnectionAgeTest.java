package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.netty.NettyChannelBuilder;
import java.net.SocketAddress;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.server.testing.FleetExtension;

/** The node's connection management, on a real node on loopback. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
final class SphinxNodeConnectionAgeTest {

  @RegisterExtension
  final FleetExtension fleet = new FleetExtension(1, "--max-connection-age-seconds=1", "--drain-seconds=1");

  @Test
  void maxConnectionAge_elapsed_clientReconnectsWithoutFailingACall() throws Exception {
    Set<SocketAddress> localAddresses = ConcurrentHashMap.newKeySet();
    ManagedChannel channel = NettyChannelBuilder.forTarget(fleet.targets().getFirst()).usePlaintext()
        .intercept(recordLocalAddress(localAddresses)).build();
    try {
      long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(4500);
      int numCalls = 0;
      while (System.nanoTime() < end) {
        SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
            .getModelInfo(GetModelInfoRequest.getDefaultInstance()); // throws if a GOAWAY failed the call
        numCalls++;
        Thread.sleep(100);
      }
      assertTrue(numCalls > 20);
      assertTrue(localAddresses.size() >= 2, "the node closed old connections and the client opened new ones: "
          + localAddresses);
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Records the client-side socket address of each call's connection. */
  private static ClientInterceptor recordLocalAddress(Set<SocketAddress> into) {
    return new ClientInterceptor() {
      @Override
      public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        ClientCall<Q, R> call = next.newCall(method, options);
        return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
          @Override
          public void start(Listener<R> listener, Metadata headers) {
            super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
              @Override
              public void onHeaders(Metadata responseHeaders) {
                SocketAddress local = call.getAttributes().get(Grpc.TRANSPORT_ATTR_LOCAL_ADDR);
                if (local != null) into.add(local);
                super.onHeaders(responseHeaders);
              }
            }, headers);
          }
        };
      }
    };
  }
}
