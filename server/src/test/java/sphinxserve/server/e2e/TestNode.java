package sphinxserve.server.e2e;

import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.server.EngineBackend;
import sphinxserve.server.NodeConfig;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.image.ImageCache;
import sphinxserve.server.testing.CountingRuntime;

/**
 * One real node on loopback: Netty on port 0, the continuous-batching engine and ONNX Runtime (one intra-op
 * thread) over the TEST bundle, each node with its own KV storage. {@link #close} stops it as production does
 * (drain, then cancel), and may be called by a test to take the node away mid-call; it is idempotent.
 */
final class TestNode implements AutoCloseable {

  private final KvCacheStorage kv;
  private final CountingRuntime runtime;
  private final EngineBackend backend;
  private final SphinxNode node;
  private final int port;
  private final AtomicBoolean closed = new AtomicBoolean();

  private TestNode(KvCacheStorage kv, CountingRuntime runtime, EngineBackend backend, SphinxNode node) {
    this.kv = kv;
    this.runtime = runtime;
    this.backend = backend;
    this.node = node;
    this.port = node.port();
  }

  /** Starts a node configured by {@code flags} over test defaults (port 0, 1-second drain, 256 KV blocks). */
  static TestNode start(String... flags) {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    String[] all = new String[flags.length + 3];
    all[0] = "--port=0";
    all[1] = "--drain-seconds=1";
    all[2] = "--kv-blocks=256";
    System.arraycopy(flags, 0, all, 3, flags.length);
    NodeConfig config = NodeConfig.parse(all, Map.of());
    KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), config.kvBlockSize(), config.kvBlocks()));
    CountingRuntime runtime = null;
    try {
      runtime = new CountingRuntime(OnnxModelRuntime.open(bundle, new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 1, false), kv));
      EngineBackend backend = new EngineBackend(runtime, kv, config);
      return new TestNode(kv, runtime, backend, SphinxNode.start(config, bundle, runtime, backend));
    } catch (RuntimeException e) {
      if (runtime != null) runtime.close();
      kv.close();
      throw e;
    }
  }

  /** The port it listens (or listened) on. */
  int port() {
    return port;
  }

  /** {@code 127.0.0.1:port}, a client target. */
  String target() {
    return "127.0.0.1:" + port;
  }

  /** The real engine's counters. */
  EngineBackend backend() {
    return backend;
  }

  /** The image cache, with its hit and miss counters. */
  ImageCache images() {
    return node.images();
  }

  /** The runtime, with its hooks. */
  CountingRuntime runtime() {
    return runtime;
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) return;
    try {
      node.close();
    } finally {
      runtime.close();
      kv.close();
    }
  }
}
