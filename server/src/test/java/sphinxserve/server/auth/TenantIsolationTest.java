package sphinxserve.server.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.PutImageResponse;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.junit.jupiter.api.Test;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.grpc.AuthInterceptorTest;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/**
 * Cross-tenant isolation on a real node: neither prefix-cache hits nor image digests reveal what another tenant
 * sent; {@code --share-caches} turns sharing back on.
 */
final class TenantIsolationTest {

  private static final String ALICE = "Bearer " + AuthInterceptorTest.ALICE_KEY;

  /** A tenants file where alice and carol may call everything. */
  private static java.nio.file.Path bothGenerate() throws java.io.IOException {
    java.nio.file.Path file = java.nio.file.Files.createTempFile("tenants", ".properties");
    file.toFile().deleteOnExit();
    java.nio.file.Files.writeString(file, "alice.key-sha256=" + Tenants.sha256(AuthInterceptorTest.ALICE_KEY)
        + "\ncarol.key-sha256=" + Tenants.sha256("carol-key") + "\n");
    return file;
  }

  private static GenerateRequest ask(String question, Content image) {
    Message.Builder m = Message.newBuilder().setRole(Role.USER);
    if (image != null) m.addContent(image);
    return GenerateRequest.newBuilder().addMessages(m.addContent(Content.newBuilder().setText(question)))
        .setSampling(SamplingParams.newBuilder().setMaxTokens(2).setIgnoreEos(true)).build();
  }

  private static Usage usage(NodeExtension node, String authorization, GenerateRequest request) {
    var it = AuthInterceptorTest.stub(node, authorization).generate(request);
    GenerateResponse last = null;
    while (it.hasNext()) last = it.next();
    return last.getUsage();
  }

  private static PutImageResponse put(NodeExtension node, String authorization, byte[] bytes) {
    return AuthInterceptorTest.stub(node, authorization).putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(bytes)).build());
  }

  @Test
  void generate_samePromptByAnotherTenant_getsNoPrefixCacheHit() throws Exception {
    NodeExtension node = new NodeExtension("--tenants=" + bothGenerate()).start();
    try {
      GenerateRequest request = ask("A question long enough to fill a few blocks of the KV cache, about isolation.", null);
      assertEquals(0, usage(node, ALICE, request).getCachedPromptTokens());
      assertTrue(usage(node, ALICE, request).getCachedPromptTokens() > 0, "the same tenant hits its own prefix");
      assertEquals(0, usage(node, "Bearer carol-key", request).getCachedPromptTokens(), "another tenant does not");
    } finally {
      node.stop();
    }
  }

  @Test
  void generate_samePromptWithShareCaches_hitsAcrossTenants() throws Exception {
    NodeExtension node = new NodeExtension("--tenants=" + bothGenerate(), "--share-caches=true").start();
    try {
      GenerateRequest request = ask("Another question long enough to fill a few blocks of the KV cache, shared.", null);
      assertEquals(0, usage(node, ALICE, request).getCachedPromptTokens());
      assertTrue(usage(node, "Bearer carol-key", request).getCachedPromptTokens() > 0);
      byte[] bytes = TestImages.png(TestImages.noise(24, 24, 7));
      String digest = put(node, ALICE, bytes).getDigest();
      assertTrue(put(node, "Bearer carol-key", bytes).getCached());
      Content byDigest = Content.newBuilder().setImageDigest(digest).build();
      assertTrue(usage(node, "Bearer carol-key", ask("What is this?", byDigest)).getImageCacheHit());
    } finally {
      node.stop();
    }
  }

  @Test
  void generate_anotherTenantsDigest_isNotFound() throws Exception {
    NodeExtension node = new NodeExtension("--tenants=" + bothGenerate()).start();
    try {
      byte[] bytes = TestImages.png(TestImages.noise(24, 24, 5));
      String digest = put(node, ALICE, bytes).getDigest();
      Content byDigest = Content.newBuilder().setImageDigest(digest).build();
      assertTrue(usage(node, ALICE, ask("What is this?", byDigest)).getImageCacheHit());
      var e = assertThrows(StatusRuntimeException.class, () -> usage(node, "Bearer carol-key", ask("What is this?", byDigest)));
      assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
      assertFalse(put(node, "Bearer carol-key", bytes).getCached(), "carol's PutImage does not hit alice's entry");
      assertTrue(put(node, "Bearer carol-key", bytes).getCached(), "but hits her own");
    } finally {
      node.stop();
    }
  }
}
