package sphinxserve.server;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.server.testing.CountingRuntime;

/**
 * Starts several real nodes on loopback before each test (Netty on port 0, the real engine and ONNX Runtime over the
 * TEST bundle, a small KV pool and one ORT thread each) and closes what is left of them afterwards. Register as an
 * instance field with {@code @RegisterExtension}; {@link #stop} takes one node down mid-test the way SIGTERM does.
 */
final class FleetExtension implements BeforeEachCallback, AfterEachCallback {

  /** KV blocks per node: room for a dozen TEST-bundle conversations at once. */
  private static final int KV_BLOCKS = 256;

  private final int numNodes;
  private final String[] flags;
  private final List<Member> members = new ArrayList<>();
  private final Set<Integer> stopped = ConcurrentHashMap.newKeySet();

  /** One node and what it owns. */
  record Member(SphinxNode node, CountingRuntime runtime, KvCacheStorage kv, int port) {
    void close() {
      node.close();
      runtime.close();
      kv.close();
    }
  }

  /** {@code numNodes} nodes configured by {@code flags} over port 0. */
  FleetExtension(int numNodes, String... flags) {
    this.numNodes = numNodes;
    this.flags = flags;
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    String[] all = new String[flags.length + 1];
    all[0] = "--port=0";
    System.arraycopy(flags, 0, all, 1, flags.length);
    NodeConfig config = NodeConfig.parse(all, Map.of());
    for (int i = 0; i < numNodes; i++) {
      KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, KV_BLOCKS));
      CountingRuntime runtime = new CountingRuntime(OnnxModelRuntime.open(bundle,
          new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 1, false), kv));
      SphinxNode node = SphinxNode.start(config, bundle, runtime, new EngineBackend(runtime, kv, config));
      members.add(new Member(node, runtime, kv, node.port()));
    }
  }

  @Override
  public void afterEach(ExtensionContext context) {
    members.forEach(Member::close); // SphinxNode.close is idempotent; runtime and storage tolerate a second close
    members.clear();
    stopped.clear();
  }

  /** The nodes, in start order (stopped ones included). */
  List<Member> members() {
    return members;
  }

  /** {@code 127.0.0.1:port} of every node, in start order. */
  List<String> targets() {
    return members.stream().map(m -> "127.0.0.1:" + m.port()).toList();
  }

  /** Drains and stops node {@code i} as its shutdown hook would, then frees its model. */
  void stop(int i) {
    stopped.add(i);
    members.get(i).close();
  }

  /** Whether {@link #stop} was called for node {@code i}. */
  boolean isStopped(int i) {
    return stopped.contains(i);
  }
}
