package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.Base64;
import java.util.Iterator;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The node's lifecycle and transport: TLS from PEM files, graceful drain on shutdown. Each test starts its own node. */
final class SphinxNodeTest {

  @TempDir
  Path dir;

  private static GenerateRequest ask(int maxTokens) {
    return GenerateRequest.newBuilder().setRequestId("drain")
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("Describe the image.")))
        .setSampling(SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true)).build();
  }

  @Test
  void start_withTlsCertAndKey_servesTlsAndRefusesPlaintext() throws Exception {
    Path[] pem = selfSigned(dir);
    NodeExtension node = new NodeExtension("--tls-cert=" + pem[0], "--tls-key=" + pem[1]).start();
    try {
      var info = SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(10, TimeUnit.SECONDS)
          .getModelInfo(GetModelInfoRequest.getDefaultInstance());
      assertEquals(node.bundle().spec().bundleId(), info.getBundleId());
      var answer = SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(30, TimeUnit.SECONDS).generate(ask(4));
      GenerateResponse last = null;
      while (answer.hasNext()) last = answer.next();
      assertEquals(FinishReason.LENGTH, last.getFinishReason());

      ManagedChannel plaintext = NettyChannelBuilder.forAddress("127.0.0.1", node.node().port()).usePlaintext().build();
      try {
        var e = assertThrows(StatusRuntimeException.class, () -> SphinxGrpc.newBlockingStub(plaintext)
            .withDeadlineAfter(5, TimeUnit.SECONDS).getModelInfo(GetModelInfoRequest.getDefaultInstance()));
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.getStatus().toString());
      } finally {
        plaintext.shutdownNow();
      }
    } finally {
      node.stop();
    }
  }

  @Test
  void start_withUnreadableTlsKey_failsNamingTheOptions() throws Exception {
    Path[] pem = selfSigned(dir);
    Files.writeString(pem[1], "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
    var e = assertThrows(IllegalArgumentException.class, () -> new NodeExtension("--tls-cert=" + pem[0], "--tls-key=" + pem[1]).start());
    assertTrue(e.getMessage().startsWith("tls-cert, tls-key: cannot load " + pem[0]), e.getMessage());
  }

  /**
   * SIGTERM's hook calls {@link SphinxNode#close}: health goes NOT_SERVING, new calls get UNAVAILABLE, the
   * stream in flight finishes normally, then the server stops, well inside the drain period.
   */
  @Test
  void close_duringAStream_drainsItThenStops() throws Exception {
    NodeExtension node = new NodeExtension("--drain-seconds=30").start();
    try {
      int numTokens = 200;
      node.runtime().beforeStep(() -> sleepMillis(3)); // at least 0.6 s of generation
      BlockingQueue<ServingStatus> health = new LinkedBlockingQueue<>();
      HealthGrpc.newStub(node.channel()).watch(HealthCheckRequest.newBuilder().setService("sphinx.v1.Sphinx").build(), new StreamObserver<>() {
        @Override
        public void onNext(HealthCheckResponse r) {
          health.add(r.getStatus());
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {}
      });
      assertEquals(ServingStatus.SERVING, health.poll(10, TimeUnit.SECONDS));
      Iterator<GenerateResponse> stream = SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(60, TimeUnit.SECONDS).generate(ask(numTokens));
      int received = stream.next().getTokenIdsCount();

      long start = System.nanoTime();
      CompletableFuture<Void> closed = CompletableFuture.runAsync(node.node()::close);
      assertEquals(ServingStatus.NOT_SERVING, health.poll(10, TimeUnit.SECONDS));
      var refused = assertThrows(StatusRuntimeException.class, () -> SphinxGrpc.newBlockingStub(node.channel())
          .withDeadlineAfter(10, TimeUnit.SECONDS).generate(ask(4)).hasNext());
      assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.getStatus().toString());
      assertTrue(!closed.isDone(), "close waits for the stream in flight");

      GenerateResponse last = null;
      while (stream.hasNext()) {
        last = stream.next();
        received += last.getTokenIdsCount();
      }
      assertEquals(FinishReason.LENGTH, last.getFinishReason());
      assertEquals(numTokens, received);
      assertEquals(numTokens, last.getUsage().getCompletionTokens());
      closed.get(20, TimeUnit.SECONDS);
      assertTrue(node.node().isTerminated());
      assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(30), "inside the drain period");
    } finally {
      node.runtime().beforeStep(() -> {});
      node.stop();
    }
  }

  private static void sleepMillis(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * A self-signed EC certificate for {@code localhost} / 127.0.0.1 made by the JDK's keytool, written as PEM
   * files: {certificate, PKCS#8 private key}.
   */
  static Path[] selfSigned(Path dir) throws IOException, InterruptedException, java.security.GeneralSecurityException {
    Path store = dir.resolve("node.p12");
    char[] password = "changeit".toCharArray();
    Process keytool = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
        "-genkeypair", "-alias", "node", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=localhost",
        "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-validity", "2", "-storetype", "PKCS12", "-keystore", store.toString(),
        "-storepass", "changeit", "-keypass", "changeit").redirectErrorStream(true).start();
    String output = new String(keytool.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (keytool.waitFor() != 0) throw new IllegalStateException("keytool failed: " + output);
    KeyStore keys = KeyStore.getInstance("PKCS12");
    try (var in = Files.newInputStream(store)) {
      keys.load(in, password);
    }
    Base64.Encoder base64 = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII));
    Path cert = Files.writeString(dir.resolve("node.crt"), "-----BEGIN CERTIFICATE-----\n"
        + base64.encodeToString(keys.getCertificate("node").getEncoded()) + "\n-----END CERTIFICATE-----\n");
    Path key = Files.writeString(dir.resolve("node.key"), "-----BEGIN PRIVATE KEY-----\n"
        + base64.encodeToString(keys.getKey("node", password).getEncoded()) + "\n-----END PRIVATE KEY-----\n");
    return new Path[] {cert, key};
  }
}
