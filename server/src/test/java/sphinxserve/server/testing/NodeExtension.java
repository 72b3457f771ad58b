package sphinxserve.server.testing;

import io.grpc.ManagedChannel;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.telemetry.Telemetry;
import sphinxserve.server.testing.CountingRuntime;
import sphinxserve.server.testing.TestNode;

/**
 * One {@link TestNode} per test class (64 KV blocks, two ONNX Runtime threads), started before the class's first
 * test and closed after its last. Register as a static field with {@code @RegisterExtension}, or call
 * {@link #start} / {@link #stop} for a node of one's own inside a test.
 */
public final class NodeExtension implements BeforeAllCallback, AfterAllCallback {

  private final String[] flags;
  private java.util.function.Supplier<Telemetry> telemetry = Telemetry::disabled;
  private TestNode node;

  /** A node configured by {@code flags} (over the test defaults: port 0, 1-second drain, no metrics port). */
  public NodeExtension(String... flags) {
    this.flags = flags;
  }

  /** Records into the telemetry {@code supplier} gives at start (the node closes it); default: disabled. */
  public NodeExtension withTelemetry(java.util.function.Supplier<Telemetry> supplier) {
    this.telemetry = supplier;
    return this;
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    start();
  }

  @Override
  public void afterAll(ExtensionContext context) {
    stop();
  }

  /** Starts the node and opens the channel. */
  public NodeExtension start() {
    node = TestNode.options().kvBlocks(64).ortThreads(2).telemetry(telemetry).flags(flags).start();
    return this;
  }

  /** Closes the channel, the node (if still open), the runtime and the KV storage. */
  public void stop() {
    if (node != null) node.close();
  }

  public ManagedChannel channel() {
    return node.channel();
  }

  public SphinxNode node() {
    return node.node();
  }

  /** The real continuous-batching engine behind the node. */
  public EngineBackend backend() {
    return node.backend();
  }

  public CountingRuntime runtime() {
    return node.runtime();
  }

  public Bundle bundle() {
    return node.bundle();
  }

  /** KV blocks held by requests right now. */
  public int numBlocksInUse() {
    return node.numBlocksInUse();
  }
}
