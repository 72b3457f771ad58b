package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
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
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.Base64;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.testing.NodeExtension;

/** The node's lifecycle and transport: TLS from PEM files, graceful drain on shutdown. Each test starts its own node. */
public final class SphinxNodeTest {

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

  /** Mutual TLS: a client certificate the CA file holds is let in; an unknown one, or none, fails the handshake. */
  @Test
  void start_withTlsClientCa_requiresATrustedClientCertificate() throws Exception {
    Path[] server = selfSigned(dir, "node");
    Path[] client = selfSigned(dir, "client");
    Path[] stranger = selfSigned(dir, "stranger");
    NodeExtension node = new NodeExtension("--tls-cert=" + server[0], "--tls-key=" + server[1], "--tls-client-ca=" + client[0]).start();
    try {
      assertEquals(Status.Code.OK, modelInfoStatus(node, server[0], client));
      assertEquals(Status.Code.UNAVAILABLE, modelInfoStatus(node, server[0], stranger), "an unknown client certificate");
      assertEquals(Status.Code.UNAVAILABLE, modelInfoStatus(node, server[0], null), "no client certificate");
      try (var sphinx = sphinxserve.client.SphinxClient.builder().target("localhost:" + node.node().port())
          .trustCertificates(server[0]).clientCertificate(client[0], client[1]).build()) {
        assertEquals(node.bundle().spec().bundleId(), sphinx.modelInfo().getBundleId(), "the client library's mTLS options");
      }
    } finally {
      node.stop();
    }
  }

  /** A renewed certificate written over the files is served to new connections without a restart. */
  @Test
  void start_certificateFilesReplaced_servesTheNewCertificateWithoutRestart() throws Exception {
    Path[] first = selfSigned(dir, "first");
    Path[] second = selfSigned(dir, "second");
    Path cert = Files.copy(first[0], dir.resolve("live.crt"));
    Path key = Files.copy(first[1], dir.resolve("live.key"));
    NodeExtension node = new NodeExtension("--tls-cert=" + cert, "--tls-key=" + key, "--tls-reload-seconds=1").start();
    try {
      var firstCert = java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(Files.newInputStream(first[0]));
      var secondCert = java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(Files.newInputStream(second[0]));
      assertEquals(firstCert, servedCertificate(node.node().port()));
      Files.copy(second[1], key, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      Files.copy(second[0], cert, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      var later = java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() + 2000); // past mtime granularity
      Files.setLastModifiedTime(key, later);
      Files.setLastModifiedTime(cert, later);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
      java.security.cert.Certificate served = null;
      while (System.nanoTime() < deadline && !secondCert.equals(served = servedCertificate(node.node().port()))) {
        Thread.sleep(200);
      }
      assertEquals(secondCert, served);
    } finally {
      node.stop();
    }
  }

  /** The certificate the server presents in a TLS handshake (the JDK's client, trusting anything). */
  private static java.security.cert.Certificate servedCertificate(int port) throws Exception {
    javax.net.ssl.SSLContext context = javax.net.ssl.SSLContext.getInstance("TLS");
    context.init(null, new javax.net.ssl.TrustManager[] {new javax.net.ssl.X509TrustManager() {
      @Override
      public void checkClientTrusted(java.security.cert.X509Certificate[] chain, String authType) {}

      @Override
      public void checkServerTrusted(java.security.cert.X509Certificate[] chain, String authType) {}

      @Override
      public java.security.cert.X509Certificate[] getAcceptedIssuers() {
        return new java.security.cert.X509Certificate[0];
      }
    }}, null);
    try (var socket = (javax.net.ssl.SSLSocket) context.getSocketFactory().createSocket("127.0.0.1", port)) {
      socket.setSoTimeout(5000);
      socket.startHandshake();
      return socket.getSession().getPeerCertificates()[0];
    } catch (javax.net.ssl.SSLException e) {
      return null; // mid-reload (new certificate, old key): the next try sees both
    }
  }

  /** GetModelInfo's status over TLS trusting {@code serverCert}, presenting {@code clientPem} (cert, key) or nothing. */
  private static Status.Code modelInfoStatus(NodeExtension node, Path serverCert, Path[] clientPem) throws Exception {
    var ssl = GrpcSslContexts.forClient().trustManager(serverCert.toFile());
    if (clientPem != null) ssl.keyManager(clientPem[0].toFile(), clientPem[1].toFile());
    ManagedChannel channel = NettyChannelBuilder.forAddress("localhost", node.node().port()).sslContext(ssl.build()).build();
    try {
      SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS).getModelInfo(GetModelInfoRequest.getDefaultInstance());
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    } finally {
      channel.shutdownNow();
    }
  }

  /** {@code --max-streams-per-connection}: a call past the limit waits for a stream; the open one is unaffected. */
  @Test
  void start_withMaxStreamsPerConnection_holdsFurtherCallsOnThatConnection() throws Exception {
    NodeExtension node = new NodeExtension("--max-streams-per-connection=1").start();
    try {
      node.runtime().beforeStep(() -> sleepMillis(5));
      Iterator<GenerateResponse> open = SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(30, TimeUnit.SECONDS).generate(ask(100));
      int received = open.next().getTokenIdsCount();
      var e = assertThrows(StatusRuntimeException.class, () -> SphinxGrpc.newBlockingStub(node.channel())
          .withDeadlineAfter(200, TimeUnit.MILLISECONDS).getModelInfo(GetModelInfoRequest.getDefaultInstance()));
      assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode(), "no second stream on this connection");
      while (open.hasNext()) received += open.next().getTokenIdsCount();
      assertEquals(100, received);
    } finally {
      node.runtime().beforeStep(() -> {});
      node.stop();
    }
  }

  /** {@code --max-connection-idle}: a connection without calls is closed by the node (the channel goes IDLE). */
  @Test
  void start_withMaxConnectionIdle_closesIdleConnections() throws Exception {
    NodeExtension node = new NodeExtension("--max-connection-idle=300ms").start();
    try {
      SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(10, TimeUnit.SECONDS).getModelInfo(GetModelInfoRequest.getDefaultInstance());
      assertEquals(io.grpc.ConnectivityState.READY, node.channel().getState(false));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (node.channel().getState(false) == io.grpc.ConnectivityState.READY && System.nanoTime() < deadline) Thread.sleep(50);
      assertEquals(io.grpc.ConnectivityState.IDLE, node.channel().getState(false));
    } finally {
      node.stop();
    }
  }

  /**
   * Keepalive enforcement: a client pinging without calls (here raw HTTP/2 PING frames, faster than any gRPC
   * client may be configured to send them) gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
   */
  @Test
  void start_pingFlood_getsGoAwayTooManyPings() throws Exception {
    NodeExtension node = new NodeExtension().start();
    try (var socket = new java.net.Socket("127.0.0.1", node.node().port())) {
      socket.setSoTimeout(5000);
      var out = new java.io.DataOutputStream(socket.getOutputStream());
      var in = new java.io.DataInputStream(socket.getInputStream());
      out.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
      writeFrame(out, 4, 0, new byte[0]); // SETTINGS
      int[] frame;
      do {
        frame = readFrame(in); // {type, flags}
      } while (!(frame[0] == 4 && (frame[1] & 1) == 0));
      writeFrame(out, 4, 1, new byte[0]); // SETTINGS ACK
      // One PING at a time: read its ACK, then wait a moment for a GOAWAY before the next, so nothing the node has
      // not read is in flight when it closes (unread data would make it reset the connection).
      byte[] goAway = null;
      for (int i = 0; i < 10 && goAway == null; i++) {
        writeFrame(out, 6, 0, new byte[8]); // PING
        boolean acked = false;
        while (true) {
          socket.setSoTimeout(acked ? 300 : 5000);
          int length;
          try {
            length = (in.readUnsignedShort() << 8) | in.readUnsignedByte();
          } catch (java.net.SocketTimeoutException quiet) {
            break; // acknowledged and no GOAWAY: next ping
          }
          int type = in.readUnsignedByte();
          int flags = in.readUnsignedByte();
          in.readInt();
          byte[] payload = in.readNBytes(length);
          if (type == 7) {
            goAway = payload;
            break;
          }
          if (type == 6 && (flags & 1) == 1) acked = true;
        }
      }
      assertNotNull(goAway, "GOAWAY after repeated pings");
      var buffer = java.nio.ByteBuffer.wrap(goAway);
      buffer.getInt(); // last stream id
      assertEquals(0xb, buffer.getInt(), "ENHANCE_YOUR_CALM");
      assertEquals("too_many_pings", new String(goAway, 8, goAway.length - 8, StandardCharsets.US_ASCII));
    } finally {
      node.stop();
    }
  }

  private static void writeFrame(java.io.DataOutputStream out, int type, int flags, byte[] payload) throws IOException {
    out.writeShort(payload.length >>> 8);
    out.writeByte(payload.length & 0xff);
    out.writeByte(type);
    out.writeByte(flags);
    out.writeInt(0); // stream 0: connection frames
    out.write(payload);
    out.flush();
  }

  private static int[] readFrame(java.io.DataInputStream in) throws IOException {
    int length = (in.readUnsignedShort() << 8) | in.readUnsignedByte();
    int type = in.readUnsignedByte();
    int flags = in.readUnsignedByte();
    in.readInt();
    in.readNBytes(length);
    return new int[] {type, flags};
  }

  /** Opened as {@code main} opens it: the pool holds the blocks {@code --kv-cache-memory} buys, and serves from them. */
  @Test
  void open_withKvCacheMemory_poolHoldsTheBlocksThatBudgetBuys() throws Exception {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--metrics-port=0", "--http-port=0", "--drain-seconds=1",
        "--bundle=" + bundle.directory(), "--kv-cache-memory=1m"}, Map.of());
    KvCacheStorage[] pool = new KvCacheStorage[1];
    try (SphinxNode node = SphinxNode.open(config, (runtime, kv, c) -> {
      pool[0] = kv;
      return new EngineBackend(runtime, kv, c);
    })) {
      // TEST: 2 layers × K and V × 2 KV heads × 16 tokens × 16 floats × 4 B = 8 KiB per block; 1 MiB buys 128.
      assertEquals(8 << 10, OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 1).bytesPerBlock());
      assertEquals(128, pool[0].layout().numBlocks());
      ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
      try {
        var answer = SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS).generate(ask(4));
        GenerateResponse last = null;
        while (answer.hasNext()) last = answer.next();
        assertEquals(FinishReason.LENGTH, last.getFinishReason());
      } finally {
        channel.shutdownNow();
      }
    }
  }

  /**
   * A model step still running when the engine's close wait runs out: the node closes everything else but leaves
   * the ONNX sessions and the KV pool allocated, and the step, once it returns, finds its memory intact.
   */
  @Test
  void close_whileAModelStepOutlivesTheWait_leavesTheRuntimeAndKvPoolAllocated() throws Exception {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--metrics-port=0", "--http-port=off", "--drain-seconds=1",
        "--bundle=" + bundle.directory(), "--kv-blocks=128"}, Map.of());
    KvCacheStorage[] pool = new KvCacheStorage[1];
    sphinxserve.api.ModelRuntime[] opened = new sphinxserve.api.ModelRuntime[1];
    EngineBackend[] backend = new EngineBackend[1];
    java.util.concurrent.CountDownLatch inStep = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.atomic.AtomicReference<Throwable> stepFailure = new java.util.concurrent.atomic.AtomicReference<>();
    SphinxNode node = SphinxNode.open(config, (runtime, kv, c) -> {
      pool[0] = kv;
      opened[0] = runtime;
      sphinxserve.server.testing.CountingRuntime slow = new sphinxserve.server.testing.CountingRuntime(runtime);
      slow.beforeStep(() -> {
        inStep.countDown();
        try {
          release.await(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      backend[0] = new EngineBackend(new StepFailureRecorder(slow, stepFailure), kv, c, java.time.Duration.ofMillis(300));
      return backend[0];
    });
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
    try {
      Iterator<GenerateResponse> answer = SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(ask(4));
      CompletableFuture.runAsync(() -> answer.forEachRemaining(r -> { }))
          .exceptionally(e -> null); // cancelled by the drain
      assertTrue(inStep.await(30, TimeUnit.SECONDS));
      node.close(); // the drain cancels the call; the engine's close gives up on the step after 300 ms
      assertTrue(!backend[0].isStopped(), "the step should still be running");
      assertTrue(!node.modelRunsEnded());
      pool[0].blockBytes(0, 1); // throws if the pool was freed
      release.countDown();
      EngineTestWait.until(backend[0]::isStopped);
      assertEquals(null, stepFailure.get(), "the step that outlived close failed");
      assertTrue(node.modelRunsEnded());
      pool[0].blockBytes(0, 1);
    } finally {
      release.countDown();
      channel.shutdownNow();
      EngineTestWait.until(backend[0]::isStopped);
      opened[0].close(); // left to the process by the node; the test frees them now that the step returned
      pool[0].close();
    }
  }

  /** Records the exception a model step throws (the engine only logs it). */
  private record StepFailureRecorder(sphinxserve.api.ModelRuntime delegate, java.util.concurrent.atomic.AtomicReference<Throwable> failure)
      implements sphinxserve.api.ModelRuntime {
    @Override
    public sphinxserve.api.ModelSpec spec() {
      return delegate.spec();
    }

    @Override
    public sphinxserve.api.TextTokenizer tokenizer() {
      return delegate.tokenizer();
    }

    @Override
    public float[] encodeViews(float[] pixels, int numViews) {
      return delegate.encodeViews(pixels, numViews);
    }

    @Override
    public sphinxserve.api.StepOutput step(java.util.List<sphinxserve.api.SequenceStep> batch) {
      try {
        return delegate.step(batch);
      } catch (RuntimeException | Error e) {
        failure.set(e);
        throw e;
      }
    }

    @Override
    public void close() {
      delegate.close();
    }
  }

  /** Polls a condition for up to 30 s. */
  private static final class EngineTestWait {
    static void until(java.util.function.BooleanSupplier condition) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!condition.getAsBoolean()) {
        if (System.nanoTime() > deadline) throw new AssertionError("condition not met in 30 s");
        Thread.sleep(10);
      }
    }
  }

  /**
   * The default fraction leaves room for every session's weights: with an int4 bundle the budget is taken after the
   * files and the wide-batch session's second copy of the matrices, not after the files alone.
   */
  @Test
  void kvPoolSizing_int4Bundle_leavesRoomForTheWideSessionsCopy(@TempDir Path int4Dir) throws IOException {
    sphinxserve.runtime.bundle.BundleBuilder.build(BundlePreset.TEST, sphinxserve.runtime.testing.TestBundles.SEED,
        sphinxserve.runtime.graph.WeightQuantization.named("int4"), int4Dir);
    Bundle int4 = Bundle.open(int4Dir);
    NodeConfig config = NodeConfig.parse(new String[] {"--bundle=" + int4Dir, "--kv-cache-memory=0.5", "--max-running-requests=100000"}, Map.of());
    sphinxserve.server.config.HostMemory host = new sphinxserve.server.config.HostMemory(512L << 20, "test", 64L << 20);
    sphinxserve.runtime.engine.ModelMemory model = OnnxModelRuntime.modelMemory(int4, config.runtimeOptions());
    assertTrue(model.wideDecoderBytes() > 0, model.toString());

    var sizing = SphinxNode.kvPoolSizing(config, int4, host, model);
    long left = (512L << 20) - (64L << 20) - int4.bytesOnDisk() - model.wideDecoderBytes();
    assertEquals((long) (0.5 * left), sizing.budgetBytes());
    assertTrue(sizing.source().contains("− model " + sphinxserve.server.config.KvPoolSizing.bytes(model.totalBytes())), sizing.source());
  }

  /** A pool that cannot hold one request of the model's longest context stops the node at start, naming the option. */
  @Test
  void open_poolBelowOneMaximumLengthRequest_refusesNamingTheOption() {
    Bundle bundle = TestBundles.get(BundlePreset.TEST); // 1,024 context tokens: 64 blocks of 16
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--metrics-port=0", "--http-port=0", "--bundle=" + bundle.directory(),
        "--kv-blocks=63"}, Map.of());
    var e = assertThrows(IllegalArgumentException.class, () -> SphinxNode.open(config, EngineBackend::new));
    assertTrue(e.getMessage().startsWith("kv-blocks: the KV pool would hold 63 blocks of 16 tokens"), e.getMessage());
    assertTrue(e.getMessage().contains("needs 64 blocks"), e.getMessage());
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
  public static Path[] selfSigned(Path dir) throws IOException, InterruptedException, java.security.GeneralSecurityException {
    return selfSigned(dir, "node");
  }

  /** As {@link #selfSigned(Path)}, as {@code name.crt} / {@code name.key} (client certificates too). */
  static Path[] selfSigned(Path dir, String name) throws IOException, InterruptedException, java.security.GeneralSecurityException {
    Path store = dir.resolve(name + ".p12");
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
    Path cert = Files.writeString(dir.resolve(name + ".crt"), "-----BEGIN CERTIFICATE-----\n"
        + base64.encodeToString(keys.getCertificate("node").getEncoded()) + "\n-----END CERTIFICATE-----\n");
    Path key = Files.writeString(dir.resolve(name + ".key"), "-----BEGIN PRIVATE KEY-----\n"
        + base64.encodeToString(keys.getKey("node", password).getEncoded()) + "\n-----END PRIVATE KEY-----\n");
    return new Path[] {cert, key};
  }
}
