package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The node jar the container images package ({@code -node.jar}, maven-shade), run the way their ENTRYPOINT runs it:
 * {@code java --add-modules jdk.incubator.vector --sun-misc-unsafe-memory-access=allow -jar}, nothing else on the
 * classpath. Catches what the shade step
 * can lose (a dependency left out, a ServiceLoader file not merged) before an image is built.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
final class NodeJarIT {

  /** The port in the node's structured (JSON) start line, {@code ..."port":"1234"..."sphinx-serve listening"...}. */
  private static final Pattern PORT = Pattern.compile("\"port\":\"(\\d+)\"");

  @Test
  void nodeJar_startsServesAndDrainsOnSigterm(@TempDir Path bundles) throws Exception {
    Path jar = Path.of(System.getProperty("sphinx.nodeJar"));
    assertTrue(Files.isRegularFile(jar), jar + " was built by the package phase");
    String java = ProcessHandle.current().info().command().orElse("java");
    Process node = new ProcessBuilder(List.of(java, "--add-modules", "jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "-jar", jar.toString(),
        "--port", "0", "--bundle", "embedded:test", "--bundle-cache", bundles.toString(), "--drain-seconds", "2", "--metrics-port", "0", "--http-port", "0",
        // 16 MiB, not the default: the pool is zeroed, so resident, at start.
        "--kv-cache-memory", "16m"))
        .redirectErrorStream(true).start();
    StringBuilder log = new StringBuilder();
    CompletableFuture<Integer> port = new CompletableFuture<>();
    Thread.ofPlatform().daemon().start(() -> {
      try (BufferedReader out = new BufferedReader(new InputStreamReader(node.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = out.readLine()) != null; ) {
          synchronized (log) {
            log.append(line).append('\n');
          }
          Matcher m = PORT.matcher(line);
          if (line.contains("sphinx-serve listening") && m.find()) port.complete(Integer.parseInt(m.group(1)));
        }
        port.completeExceptionally(new AssertionError("the node exited before listening:\n" + log));
      } catch (Exception e) {
        port.completeExceptionally(e);
      }
    });
    ManagedChannel channel = null;
    try {
      channel = NettyChannelBuilder.forAddress("127.0.0.1", port.get(60, TimeUnit.SECONDS)).usePlaintext().build();
      assertEquals(ServingStatus.SERVING, HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
          .check(HealthCheckRequest.newBuilder().setService(SphinxGrpc.SERVICE_NAME).build()).getStatus());
      assertTrue(SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
          .getModelInfo(GetModelInfoRequest.getDefaultInstance()).isInitialized());
      synchronized (log) {
        assertTrue(log.toString().contains("\"kv_blocks\":\"2048\""), "16 MiB of 8 KiB TEST blocks, logged at start:\n" + log);
      }
      node.destroy(); // SIGTERM: the shutdown hook drains and closes
      assertTrue(node.waitFor(30, TimeUnit.SECONDS), "drained and exited after SIGTERM:\n" + log);
      synchronized (log) {
        assertTrue(!log.toString().contains("Exception"), log.toString());
        assertTrue(!log.toString().contains("sun.misc.Unsafe"), "the ENTRYPOINT's flags leave no Unsafe warning:\n" + log);
      }
    } finally {
      if (channel != null) channel.shutdownNow();
      node.destroyForcibly();
    }
  }

  /** A KV pool too small for one maximum-length request is bad configuration: exit code 2 and the option named. */
  @Test
  void nodeJar_kvPoolBelowOneRequest_exitsWithCode2(@TempDir Path bundles) throws Exception {
    Path jar = Path.of(System.getProperty("sphinx.nodeJar"));
    String java = ProcessHandle.current().info().command().orElse("java");
    Process node = new ProcessBuilder(List.of(java, "--add-modules", "jdk.incubator.vector", "-jar", jar.toString(),
        "--port", "0", "--bundle", "embedded:test", "--bundle-cache", bundles.toString(), "--metrics-port", "0", "--http-port", "0", "--kv-blocks", "8"))
        .redirectErrorStream(true).start();
    String out = new String(node.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(node.waitFor(60, TimeUnit.SECONDS), out);
    assertEquals(2, node.exitValue(), out);
    assertTrue(out.contains("error: kv-blocks: the KV pool would hold 8 blocks of 16 tokens"), out);
  }
}
