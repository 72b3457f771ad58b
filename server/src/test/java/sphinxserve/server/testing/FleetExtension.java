package sphinxserve.server.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import sphinxserve.server.testing.TestNode;

/**
 * Several {@link TestNode}s started before each test and closed afterwards (what is left of them). Register as an
 * instance field with {@code @RegisterExtension}; {@link #stop} takes one node down mid-test the way SIGTERM does.
 */
public final class FleetExtension implements BeforeEachCallback, AfterEachCallback {

  private final int numNodes;
  private final String[] flags;
  private final List<TestNode> members = new ArrayList<>();
  private final Set<Integer> stopped = ConcurrentHashMap.newKeySet();

  /** {@code numNodes} nodes configured by {@code flags}, with production's drain period unless they set one. */
  public FleetExtension(int numNodes, String... flags) {
    this.numNodes = numNodes;
    this.flags = flags;
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    for (int i = 0; i < numNodes; i++) {
      members.add(TestNode.options().flags("--drain-seconds=30").flags(flags).start());
    }
  }

  @Override
  public void afterEach(ExtensionContext context) {
    members.forEach(TestNode::close); // idempotent: stopped nodes are skipped
    members.clear();
    stopped.clear();
  }

  /** The nodes, in start order (stopped ones included). */
  public List<TestNode> members() {
    return members;
  }

  /** {@code 127.0.0.1:port} of every node, in start order. */
  public List<String> targets() {
    return members.stream().map(TestNode::target).toList();
  }

  /** Drains and stops node {@code i} as its shutdown hook would, then frees its model. */
  public void stop(int i) {
    stopped.add(i);
    members.get(i).close();
  }

  /** Whether {@link #stop} was called for node {@code i}. */
  public boolean isStopped(int i) {
    return stopped.contains(i);
  }
}
