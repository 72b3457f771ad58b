package sphinxserve.server.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jose.crypto.MACSigner;
import com.nimbusds.jose.crypto.RSASSASigner;
import com.nimbusds.jose.jwk.Curve;
import com.nimbusds.jose.jwk.ECKey;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.RSAKey;
import com.nimbusds.jose.jwk.gen.ECKeyGenerator;
import com.nimbusds.jose.jwk.gen.RSAKeyGenerator;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.PlainJWT;
import com.nimbusds.jwt.SignedJWT;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.server.grpc.AuthInterceptorTest;
import sphinxserve.server.testing.NodeExtension;

/**
 * JWT authentication against a real node: tokens signed by locally generated RSA and EC keys, verified against
 * a JWKS file (no network); every outcome of issuer, audience, expiry, signature, algorithm and tenant.
 */
final class JwtAuthenticatorTest {

  private static final String ISSUER = "https://idp.example";
  private static final String AUDIENCE = "sphinx-serve";
  private static final RSAKey RSA = generateRsa("rsa-1");
  private static final ECKey EC = generateEc();
  private static final RSAKey STRANGER = generateRsa("rsa-1"); // same key id, not in the JWKS

  private static RSAKey generateRsa(String keyId) {
    try {
      return new RSAKeyGenerator(2048).keyID(keyId).generate();
    } catch (com.nimbusds.jose.JOSEException e) {
      throw new IllegalStateException(e);
    }
  }

  private static ECKey generateEc() {
    try {
      return new ECKeyGenerator(Curve.P_256).keyID("ec-1").generate();
    } catch (com.nimbusds.jose.JOSEException e) {
      throw new IllegalStateException(e);
    }
  }

  private static Path jwks() {
    try {
      Path file = Files.createTempFile("jwks", ".json");
      file.toFile().deleteOnExit();
      Files.writeString(file, new JWKSet(List.of(RSA.toPublicJWK(), EC.toPublicJWK())).toString());
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension("--tenants=" + AuthInterceptorTest.tenantsFile(), "--jwt-jwks=" + jwks(),
      "--jwt-issuer=" + ISSUER, "--jwt-audience=" + AUDIENCE);

  private static JWTClaimsSet.Builder claims(String tenant) {
    return new JWTClaimsSet.Builder().issuer(ISSUER).audience(AUDIENCE).subject("svc-" + tenant).claim("tenant", tenant)
        .expirationTime(Date.from(Instant.now().plusSeconds(300)));
  }

  private static String rs256(RSAKey key, JWTClaimsSet claims) throws Exception {
    SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.RS256).keyID(key.getKeyID()).type(JOSEObjectType.JWT).build(), claims);
    jwt.sign(new RSASSASigner(key));
    return jwt.serialize();
  }

  private static Status.Code call(String token) {
    try {
      AuthInterceptorTest.stub(NODE, "Bearer " + token).getModelInfo(GetModelInfoRequest.getDefaultInstance());
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    }
  }

  @Test
  void call_withValidRsaAndEcTokens_succeeds() throws Exception {
    assertEquals(Status.Code.OK, call(rs256(RSA, claims("alice").build())));
    SignedJWT ec = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.ES256).keyID("ec-1").build(), claims("bob").build());
    ec.sign(new ECDSASigner(EC));
    assertEquals(Status.Code.OK, call(ec.serialize()), "bob may call GetModelInfo");
  }

  @Test
  void call_withBadTokens_isUnauthenticated() throws Exception {
    assertEquals(Status.Code.UNAUTHENTICATED, call(rs256(RSA, claims("alice").expirationTime(Date.from(Instant.now().minusSeconds(600))).build())), "expired");
    assertEquals(Status.Code.UNAUTHENTICATED, call(rs256(RSA, claims("alice").issuer("https://evil.example").build())), "issuer");
    assertEquals(Status.Code.UNAUTHENTICATED, call(rs256(RSA, claims("alice").audience("someone-else").build())), "audience");
    assertEquals(Status.Code.UNAUTHENTICATED, call(rs256(RSA, claims("alice").expirationTime(null).build())), "no exp");
    assertEquals(Status.Code.UNAUTHENTICATED, call(rs256(STRANGER, claims("alice").build())), "a key not in the JWKS");
    assertEquals(Status.Code.UNAUTHENTICATED, call(rs256(RSA, claims("alice").claim("tenant", null).build())), "no tenant claim");
    assertEquals(Status.Code.UNAUTHENTICATED, call(new PlainJWT(claims("alice").build()).serialize() + "x"), "alg none");
    SignedJWT hmac = new SignedJWT(new JWSHeader(JWSAlgorithm.HS256), claims("alice").build());
    hmac.sign(new MACSigner(RSA.toRSAPublicKey().getEncoded()));
    assertEquals(Status.Code.UNAUTHENTICATED, call(hmac.serialize()), "HMAC keyed with the public key");
    String valid = rs256(RSA, claims("alice").build());
    assertEquals(Status.Code.UNAUTHENTICATED, call(valid.substring(0, valid.length() - 4) + "AAAA"), "tampered signature");
  }

  @Test
  void call_withTokenForUnconfiguredTenant_isPermissionDenied() throws Exception {
    var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class, () -> AuthInterceptorTest.stub(NODE,
        "Bearer " + rs256(RSA, claims("mallory").build())).getModelInfo(GetModelInfoRequest.getDefaultInstance()));
    assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().contains("mallory is not configured"), e.getStatus().toString());
  }

  @Test
  void putImage_withTokenOfTenantNotAllowedIt_isPermissionDenied() throws Exception {
    var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class, () -> AuthInterceptorTest.stub(NODE,
        "Bearer " + rs256(RSA, claims("bob").build())).putImage(dev.sphinxserve.proto.v1.PutImageRequest.getDefaultInstance()));
    assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
  }

  @Test
  void call_withApiKey_stillWorksBesideJwt() {
    assertEquals(Status.Code.OK, call(AuthInterceptorTest.ALICE_KEY));
  }
}
