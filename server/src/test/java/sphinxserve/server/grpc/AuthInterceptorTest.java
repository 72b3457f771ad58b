package sphinxserve.server.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.grpc.AuthInterceptor;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/** Every authentication outcome against a real node with a tenants file: API keys, methods, health, reflection. */
public final class AuthInterceptorTest {

  public static final String ALICE_KEY = "alice-secret-key";
  static final String BOB_KEY = "bob-secret-key";

  /** alice may call everything; bob only GetModelInfo. */
  public static Path tenantsFile() {
    try {
      Path file = Files.createTempFile("tenants", ".properties");
      file.toFile().deleteOnExit();
      Files.writeString(file, """
          alice.key-sha256 = %s
          bob.key-sha256 = %s
          bob.methods = GetModelInfo
          """.formatted(Tenants.sha256(ALICE_KEY), Tenants.sha256(BOB_KEY)));
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @RegisterExtension
  public static final NodeExtension NODE = new NodeExtension("--tenants=" + tenantsFile(), "--reflection=authenticated");

  /** A blocking stub sending {@code authorization} (none when null). */
  public static SphinxGrpc.SphinxBlockingStub stub(NodeExtension node, String authorization) {
    Metadata headers = new Metadata();
    if (authorization != null) headers.put(AuthInterceptor.AUTHORIZATION, authorization);
    return SphinxGrpc.newBlockingStub(node.channel()).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
        .withDeadlineAfter(30, TimeUnit.SECONDS);
  }

  private static Status.Code modelInfoStatus(String authorization) {
    try {
      stub(NODE, authorization).getModelInfo(GetModelInfoRequest.getDefaultInstance());
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    }
  }

  @Test
  void getModelInfo_withKnownKey_succeeds() {
    assertEquals(Status.Code.OK, modelInfoStatus("Bearer " + ALICE_KEY));
    assertEquals(Status.Code.OK, modelInfoStatus("bearer " + BOB_KEY), "the scheme is case-insensitive");
  }

  @Test
  void getModelInfo_withoutCredentials_isUnauthenticated() {
    var e = assertThrows(StatusRuntimeException.class, () -> stub(NODE, null).getModelInfo(GetModelInfoRequest.getDefaultInstance()));
    assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().contains("authorization: Bearer"), e.getStatus().toString());
  }

  @Test
  void getModelInfo_withUnknownKey_isUnauthenticated() {
    assertEquals(Status.Code.UNAUTHENTICATED, modelInfoStatus("Bearer not-a-key"));
    assertEquals(Status.Code.UNAUTHENTICATED, modelInfoStatus("Bearer " + Tenants.sha256(ALICE_KEY)), "the stored hash is not a key");
  }

  @Test
  void getModelInfo_withMalformedHeader_isUnauthenticated() {
    assertEquals(Status.Code.UNAUTHENTICATED, modelInfoStatus(ALICE_KEY));
    assertEquals(Status.Code.UNAUTHENTICATED, modelInfoStatus("Basic " + ALICE_KEY));
    assertEquals(Status.Code.UNAUTHENTICATED, modelInfoStatus("Bearer "));
  }

  @Test
  void putImage_byTenantNotAllowedIt_isPermissionDenied() {
    PutImageRequest request = PutImageRequest.newBuilder().setImage(ByteString.copyFrom(TestImages.png(TestImages.noise(20, 20, 1)))).build();
    var e = assertThrows(StatusRuntimeException.class, () -> stub(NODE, "Bearer " + BOB_KEY).putImage(request));
    assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
    assertEquals("tenant bob may not call PutImage", e.getStatus().getDescription());
    assertEquals(20, stub(NODE, "Bearer " + ALICE_KEY).putImage(request).getWidth());
  }

  /** The audit line: one JSON line per call with tenant, request id, status and token counts; never prompt or key. */
  @Test
  void logs_oneLinePerCall_withTenantAndOutcome_neverPromptOrKey() throws Exception {
    var logging = (ch.qos.logback.classic.LoggerContext) org.slf4j.LoggerFactory.getILoggerFactory();
    ch.qos.logback.classic.Logger requests = logging.getLogger("sphinxserve.requests");
    var out = new java.io.ByteArrayOutputStream();
    var encoder = new ch.qos.logback.classic.encoder.JsonEncoder();
    encoder.setContext(logging);
    encoder.start();
    var appender = new ch.qos.logback.core.OutputStreamAppender<ch.qos.logback.classic.spi.ILoggingEvent>();
    appender.setContext(logging);
    appender.setEncoder(encoder);
    appender.setOutputStream(out);
    appender.start();
    var level = requests.getLevel();
    requests.addAppender(appender);
    requests.setLevel(ch.qos.logback.classic.Level.INFO);
    String secret = "the secret audit prompt 41c7";
    try {
      var it = stub(NODE, "Bearer " + ALICE_KEY).generate(dev.sphinxserve.proto.v1.GenerateRequest.newBuilder().setRequestId("audit-1")
          .addMessages(dev.sphinxserve.proto.v1.Message.newBuilder().setRole(dev.sphinxserve.proto.v1.Role.USER)
              .addContent(dev.sphinxserve.proto.v1.Content.newBuilder().setText(secret)))
          .setSampling(dev.sphinxserve.proto.v1.SamplingParams.newBuilder().setMaxTokens(3).setIgnoreEos(true)).build());
      while (it.hasNext()) it.next();
      assertThrows(StatusRuntimeException.class, () -> stub(NODE, "Bearer wrong-key-77").getModelInfo(GetModelInfoRequest.getDefaultInstance()));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (out.toString(java.nio.charset.StandardCharsets.UTF_8).lines().count() < 2 && System.nanoTime() < deadline) Thread.sleep(20);
    } finally {
      requests.detachAppender(appender);
      requests.setLevel(level);
      appender.stop();
    }
    String all = out.toString(java.nio.charset.StandardCharsets.UTF_8);
    String generate = all.lines().filter(l -> l.contains("audit-1")).findFirst().orElseThrow();
    assertTrue(generate.contains("\"tenant\":\"alice\"") && generate.contains("\"status\":\"OK\"")
        && (generate.contains("\"completion_tokens\":\"3\"") || generate.contains("\"completion_tokens\":3")), generate);
    String refused = all.lines().filter(l -> l.contains("UNAUTHENTICATED")).findFirst().orElseThrow();
    assertTrue(refused.contains("GetModelInfo"), refused);
    assertTrue(!all.contains(secret) && !all.contains(ALICE_KEY) && !all.contains("wrong-key-77"), all);
  }

  @Test
  void healthCheck_withoutCredentials_isServing() {
    var status = HealthGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(10, TimeUnit.SECONDS)
        .check(HealthCheckRequest.newBuilder().setService(SphinxGrpc.SERVICE_NAME).build()).getStatus();
    assertEquals(ServingStatus.SERVING, status);
  }

  @Test
  void reflection_authenticated_refusesAnonymousAndServesTenants() throws Exception {
    assertEquals(Status.Code.UNAUTHENTICATED, Reflection.listServices(NODE.channel(), null).getCode());
    assertEquals(Status.Code.OK, Reflection.listServices(NODE.channel(), "Bearer " + BOB_KEY).getCode());
  }

  @Test
  void reflection_off_isUnimplemented() throws Exception {
    NodeExtension node = new NodeExtension("--reflection=off").start();
    try {
      assertEquals(Status.Code.UNIMPLEMENTED, Reflection.listServices(node.channel(), null).getCode());
    } finally {
      node.stop();
    }
  }

  /** Lists services over server reflection (a bidi stream), returning the call's status. */
  static final class Reflection {
    private Reflection() {}

    static Status listServices(io.grpc.Channel channel, String authorization) throws InterruptedException {
      Metadata headers = new Metadata();
      if (authorization != null) headers.put(AuthInterceptor.AUTHORIZATION, authorization);
      var done = new java.util.concurrent.CompletableFuture<Status>();
      var requests = io.grpc.reflection.v1.ServerReflectionGrpc.newStub(channel)
          .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
          .serverReflectionInfo(new io.grpc.stub.StreamObserver<>() {
            @Override
            public void onNext(io.grpc.reflection.v1.ServerReflectionResponse r) {}

            @Override
            public void onError(Throwable t) {
              done.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {
              done.complete(Status.OK);
            }
          });
      requests.onNext(io.grpc.reflection.v1.ServerReflectionRequest.newBuilder().setListServices("").build());
      requests.onCompleted();
      try {
        return done.get(10, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
        throw new IllegalStateException(e);
      }
    }
  }
}
