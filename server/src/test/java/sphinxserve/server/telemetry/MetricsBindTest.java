package sphinxserve.server.telemetry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.Map;
import org.junit.jupiter.api.Test;
import sphinxserve.server.config.NodeConfig;

/**
 * Where the Prometheus endpoint listens, tried over real sockets: with the default flags it answers on loopback and
 * refuses a connection to this machine's network address; {@code --metrics-bind=all-interfaces} (or
 * {@code --plaintext=all-interfaces}) opens it there.
 */
class MetricsBindTest {

  private static final Map<String, String> NO_EXPORT = Map.of("otel.traces.exporter", "none",
      "otel.metrics.exporter", "none", "otel.logs.exporter", "none");

  @Test
  void defaultFlags_metricsOnLoopbackOnly() throws Exception {
    InetAddress external = nonLoopbackAddress();
    assumeTrue(external != null, "this machine has no non-loopback address to try");
    int port = freePort();
    try (Telemetry telemetry = Telemetry.open(NodeConfig.parse(new String[] {}, Map.of()).metricsAddress(), port, NO_EXPORT)) {
      assertEquals(200, scrapeStatus(port));
      assertThrows(ConnectException.class, () -> connect(external, port), "/metrics reachable on " + external.getHostAddress());
    }
  }

  @Test
  void metricsBindAllInterfaces_reachableOnTheNetworkAddress() throws Exception {
    InetAddress external = nonLoopbackAddress();
    assumeTrue(external != null, "this machine has no non-loopback address to try");
    for (String flag : new String[] {"--metrics-bind=all-interfaces", "--plaintext=all-interfaces"}) {
      int port = freePort();
      try (Telemetry telemetry = Telemetry.open(NodeConfig.parse(new String[] {flag}, Map.of()).metricsAddress(), port, NO_EXPORT)) {
        connect(external, port); // throws if refused
        assertEquals(200, scrapeStatus(port));
      }
    }
  }

  /** The status of {@code GET /metrics} on loopback port {@code port}. */
  private static int scrapeStatus(int port) throws IOException, InterruptedException {
    try (java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient()) {
      return http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
          java.net.http.HttpResponse.BodyHandlers.discarding()).statusCode();
    }
  }

  private static void connect(InetAddress address, int port) throws IOException {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(address, port), 2000);
    }
  }

  /** An IPv4 address of an interface that is up and not loopback; null when there is none. */
  private static InetAddress nonLoopbackAddress() throws SocketException {
    for (NetworkInterface nic : NetworkInterface.networkInterfaces().toList()) {
      if (!nic.isUp() || nic.isLoopback()) continue;
      for (InetAddress a : nic.inetAddresses().toList()) if (a instanceof Inet4Address && !a.isLoopbackAddress()) return a;
    }
    return null;
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}
