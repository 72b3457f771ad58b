package sphinxserve.server.e2e;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import sphinxserve.server.testing.TestNode;

/**
 * Starts real nodes ({@link TestNode}) and stops them afterwards: those from {@link #startShared} after the test
 * class, those from {@link #start} after the test that started them. Register as a static field with
 * {@code @RegisterExtension}.
 */
final class Nodes implements AfterEachCallback, AfterAllCallback {

  private final List<TestNode> shared = new ArrayList<>();
  private final List<TestNode> perTest = new ArrayList<>();

  /** A node for the whole class (start it in {@code @BeforeAll}). */
  synchronized TestNode startShared(String... flags) {
    TestNode node = TestNode.start(flags);
    shared.add(node);
    return node;
  }

  /** A node for the current test only. */
  synchronized TestNode start(String... flags) {
    TestNode node = TestNode.start(flags);
    perTest.add(node);
    return node;
  }

  @Override
  public synchronized void afterEach(ExtensionContext context) {
    closeAll(perTest);
  }

  @Override
  public synchronized void afterAll(ExtensionContext context) {
    closeAll(perTest);
    closeAll(shared);
  }

  private static void closeAll(List<TestNode> nodes) {
    RuntimeException failure = null;
    for (TestNode node : nodes.reversed()) {
      try {
        node.close();
      } catch (RuntimeException e) {
        if (failure == null) failure = e;
        else failure.addSuppressed(e);
      }
    }
    nodes.clear();
    if (failure != null) throw failure;
  }
}
