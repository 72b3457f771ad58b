package sphinxserve.server.testing;

import io.grpc.ManagedChannel;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;
import javax.net.ssl.SSLException;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.image.ImageCache;
import sphinxserve.server.telemetry.Telemetry;

/**
 * The one way tests start a node: a real {@link SphinxNode} (Netty on loopback, port 0) with the real
 * continuous-batching engine and ONNX Runtime over the TEST bundle, its own KV storage, and a channel to it (TLS
 * trusting {@code --tls-cert} when that flag is given, plaintext otherwise). The runtime is wrapped in a
 * {@link CountingRuntime} so tests can slow steps down or inject faults. {@link #close} stops the node as
 * production does (drain, then cancel) and frees the model; it is idempotent, so a test may take a node away
 * mid-call. The JUnit extensions ({@code NodeExtension}, {@code FleetExtension}, {@code e2e.Nodes}) only decide
 * when nodes start and stop.
 */
public final class TestNode implements AutoCloseable {

  /** How a node is started; every setting has a test default. */
  public static final class Options {
    private final List<String> flags = new ArrayList<>(List.of("--port=0", "--drain-seconds=1", "--metrics-port=0", "--http-port=0"));
    private int kvBlocks = 256;
    private int ortThreads = 1;
    private Supplier<Telemetry> telemetry = Telemetry::disabled;

    private Options() {}

    /** Node flags, over the defaults (port 0, a 1-second drain, no metrics port); later flags win. */
    public Options flags(String... more) {
      flags.addAll(List.of(more));
      return this;
    }

    /** KV blocks of the pool (default 256: room for a dozen TEST-bundle conversations at once). */
    public Options kvBlocks(int numBlocks) {
      this.kvBlocks = numBlocks;
      return this;
    }

    /** ONNX Runtime intra-op threads (default 1, so several nodes share the test machine's cores). */
    public Options ortThreads(int numThreads) {
      this.ortThreads = numThreads;
      return this;
    }

    /** Records into the telemetry {@code supplier} gives at start (the node closes it); default: disabled. */
    public Options telemetry(Supplier<Telemetry> supplier) {
      this.telemetry = supplier;
      return this;
    }

    /** Starts the node. */
    public TestNode start() {
      return TestNode.start(this);
    }
  }

  private final NodeConfig config;
  private final Bundle bundle;
  private final KvCacheStorage kv;
  private final CountingRuntime runtime;
  private final EngineBackend backend;
  private final SphinxNode node;
  private final int port;
  private final AtomicBoolean closed = new AtomicBoolean();
  private ManagedChannel channel;

  private TestNode(NodeConfig config, Bundle bundle, KvCacheStorage kv, CountingRuntime runtime, EngineBackend backend, SphinxNode node) {
    this.config = config;
    this.bundle = bundle;
    this.kv = kv;
    this.runtime = runtime;
    this.backend = backend;
    this.node = node;
    this.port = node.port();
  }

  /** Settings to start a node with. */
  public static Options options() {
    return new Options();
  }

  /** A node with the test defaults and {@code flags}. */
  public static TestNode start(String... flags) {
    return options().flags(flags).start();
  }

  private static TestNode start(Options options) {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    List<String> flags = new ArrayList<>(options.flags);
    flags.add(1, "--kv-blocks=" + options.kvBlocks); // before the caller's flags, which may override it
    NodeConfig config = NodeConfig.parse(flags.toArray(String[]::new), Map.of());
    KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), config.kvBlockSize(), config.kvBlocks()));
    CountingRuntime runtime = null;
    try {
      runtime = new CountingRuntime(OnnxModelRuntime.open(bundle,
          new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, options.ortThreads, false, true), kv));
      EngineBackend backend = new EngineBackend(runtime, kv, config);
      return new TestNode(config, bundle, kv, runtime, backend, SphinxNode.start(config, bundle, runtime, backend, options.telemetry.get()));
    } catch (RuntimeException e) {
      if (runtime != null) runtime.close();
      kv.close();
      throw e;
    }
  }

  /** The port it listens (or listened) on. */
  public int port() {
    return port;
  }

  /** {@code 127.0.0.1:port}, a client target. */
  public String target() {
    return "127.0.0.1:" + port;
  }

  /** A channel to the node, opened on first use and closed with it. */
  public synchronized ManagedChannel channel() {
    if (channel == null) {
      if (config.tls()) {
        try {
          channel = NettyChannelBuilder.forAddress("localhost", port)
              .sslContext(GrpcSslContexts.forClient().trustManager(config.tlsCert().toFile()).build()).build();
        } catch (SSLException e) {
          throw new IllegalStateException(e);
        }
      } else {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
      }
    }
    return channel;
  }

  public SphinxNode node() {
    return node;
  }

  /** The real continuous-batching engine behind the node, with its counters. */
  public EngineBackend backend() {
    return backend;
  }

  /** The runtime, with its hooks. */
  public CountingRuntime runtime() {
    return runtime;
  }

  public Bundle bundle() {
    return bundle;
  }

  /** The image cache, with its hit and miss counters. */
  public ImageCache images() {
    return node.images();
  }

  /** KV blocks held by requests right now (cached, unreferenced prefix blocks are not held). */
  public int numBlocksInUse() {
    return backend.kvStats().numInUseBlocks();
  }

  /** Closes the channel, the node (draining), the runtime and the KV storage; idempotent. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) return;
    try {
      synchronized (this) {
        if (channel != null) {
          channel.shutdownNow();
          channel.awaitTermination(5, TimeUnit.SECONDS);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      try {
        node.close();
      } finally {
        if (node.modelRunsEnded()) { // else a step still writes into them: left to the JVM's exit, as the node does
          runtime.close();
          kv.close();
        }
      }
    }
  }
}
