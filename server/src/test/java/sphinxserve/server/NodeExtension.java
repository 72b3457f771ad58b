package sphinxserve.server;

import io.grpc.ManagedChannel;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLException;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.server.testing.CountingRuntime;

/**
 * Starts a real node (Netty on loopback, port 0) over the real ONNX Runtime with the TEST bundle, and a
 * channel to it (TLS trusting {@code --tls-cert} when that flag is given, plaintext otherwise), once per test
 * class; closes all of it afterwards. Register as a static field with {@code @RegisterExtension}, or call
 * {@link #start} / {@link #stop} for a node of one's own inside a test.
 */
final class NodeExtension implements BeforeAllCallback, AfterAllCallback {

  private final String[] flags;
  private java.util.function.Supplier<Telemetry> telemetry = Telemetry::disabled;
  private KvCacheStorage kv;
  private CountingRuntime runtime;
  private SphinxNode node;
  private EngineBackend backend;
  private ManagedChannel channel;
  private Bundle bundle;

  /** A node configured by {@code flags} (over test defaults: port 0, 1-second drain, no metrics port). */
  NodeExtension(String... flags) {
    this.flags = flags;
  }

  /** Records into the telemetry {@code supplier} gives at start (the node closes it); default: disabled. */
  NodeExtension withTelemetry(java.util.function.Supplier<Telemetry> supplier) {
    this.telemetry = supplier;
    return this;
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    start();
  }

  @Override
  public void afterAll(ExtensionContext context) throws InterruptedException {
    stop();
  }

  /** Starts the node and opens the channel. */
  NodeExtension start() {
    bundle = TestBundles.get(BundlePreset.TEST);
    kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 64));
    runtime = new CountingRuntime(OnnxModelRuntime.open(bundle, new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 2, false), kv));
    String[] all = new String[flags.length + 3];
    all[0] = "--port=0";
    all[1] = "--drain-seconds=1";
    all[2] = "--metrics-port=0";
    System.arraycopy(flags, 0, all, 3, flags.length);
    NodeConfig config = NodeConfig.parse(all, Map.of());
    backend = new EngineBackend(runtime, kv, config);
    node = SphinxNode.start(config, bundle, runtime, backend, telemetry.get());
    if (config.tls()) {
      try {
        channel = NettyChannelBuilder.forAddress("localhost", node.port())
            .sslContext(GrpcSslContexts.forClient().trustManager(config.tlsCert().toFile()).build()).build();
      } catch (SSLException e) {
        throw new IllegalStateException(e);
      }
    } else {
      channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
    }
    return this;
  }

  /** Closes the channel, the node (if still open), the runtime and the KV storage. */
  void stop() throws InterruptedException {
    if (channel != null) {
      channel.shutdownNow();
      channel.awaitTermination(5, TimeUnit.SECONDS);
    }
    if (node != null) node.close();
    if (runtime != null) runtime.close();
    if (kv != null) kv.close();
  }

  ManagedChannel channel() {
    return channel;
  }

  SphinxNode node() {
    return node;
  }

  /** The real continuous-batching engine behind the node. */
  EngineBackend backend() {
    return backend;
  }

  CountingRuntime runtime() {
    return runtime;
  }

  Bundle bundle() {
    return bundle;
  }
}
