package sphinxserve.server.auth;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.source.JWKSource;
import com.nimbusds.jose.proc.BadJOSEException;
import com.nimbusds.jose.proc.JWSVerificationKeySelector;
import com.nimbusds.jose.proc.SecurityContext;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.proc.ConfigurableJWTProcessor;
import com.nimbusds.jwt.proc.DefaultJWTClaimsVerifier;
import com.nimbusds.jwt.proc.DefaultJWTProcessor;
import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.text.ParseException;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Verifies bearer JWTs from an identity provider and names their tenant, with Nimbus JOSE + JWT.
 *
 * <p>Checked: the JWS signature against the public keys of a local JWKS file ({@code --jwt-jwks}; asymmetric
 * algorithms only, RS/PS/ES, so neither {@code alg: none} nor an HMAC made with a public key passes), the
 * issuer ({@code --jwt-issuer}, exact), the audience ({@code --jwt-audience}, must be among {@code aud}), the
 * expiry ({@code exp} required) and not-before, with Nimbus's default 60-second clock skew. The tenant is the
 * string claim {@code --jwt-tenant-claim} (default {@code tenant}). The JWKS file is re-read when it changes
 * (checked at most every {@value #RECHECK_SECONDS} s), so keys rotate without a restart. The node never fetches
 * keys over the network: deployments sync the file from the provider's JWKS endpoint.
 */
public final class JwtAuthenticator {

  private static final Logger LOG = LoggerFactory.getLogger(JwtAuthenticator.class);

  /** How often the JWKS file's modification time is looked at. */
  static final long RECHECK_SECONDS = 5;

  /** Signature algorithms accepted: public-key ones only. */
  private static final Set<JWSAlgorithm> ALGORITHMS = Set.of(JWSAlgorithm.RS256, JWSAlgorithm.RS384, JWSAlgorithm.RS512,
      JWSAlgorithm.PS256, JWSAlgorithm.PS384, JWSAlgorithm.PS512, JWSAlgorithm.ES256, JWSAlgorithm.ES384, JWSAlgorithm.ES512);

  private static final Pattern TENANT = Pattern.compile("[A-Za-z0-9_-]{1,64}");

  private final Path jwksFile;
  private final String tenantClaim;
  private final ConfigurableJWTProcessor<SecurityContext> processor = new DefaultJWTProcessor<>();
  private volatile JWKSet keys;
  private volatile FileTime keysTime;
  private volatile long nextCheckNanos;

  /** Reads {@code jwksFile}; a bad file throws {@link IllegalArgumentException} naming {@code jwt-jwks}. */
  public JwtAuthenticator(Path jwksFile, String issuer, String audience, String tenantClaim) {
    this.jwksFile = jwksFile;
    this.tenantClaim = tenantClaim;
    try {
      this.keysTime = Files.getLastModifiedTime(jwksFile);
      this.keys = JWKSet.load(jwksFile.toFile()).toPublicJWKSet();
    } catch (IOException | ParseException e) {
      throw new IllegalArgumentException("jwt-jwks: cannot read a JWK set from " + jwksFile + ": " + e.getMessage(), e);
    }
    if (keys.getKeys().isEmpty()) throw new IllegalArgumentException("jwt-jwks: " + jwksFile + " holds no public key");
    this.nextCheckNanos = System.nanoTime() + TimeUnit.SECONDS.toNanos(RECHECK_SECONDS);
    JWKSource<SecurityContext> source = (selector, context) -> selector.select(currentKeys());
    processor.setJWSKeySelector(new JWSVerificationKeySelector<>(ALGORITHMS, source));
    processor.setJWTClaimsSetVerifier(new DefaultJWTClaimsVerifier<>(audience,
        new JWTClaimsSet.Builder().issuer(issuer).build(), Set.of("exp", tenantClaim)));
  }

  /** Whether {@code token} has a JWT's shape: three non-empty parts separated by dots. */
  static boolean looksLikeJwt(String token) {
    int first = token.indexOf('.');
    int second = first < 0 ? -1 : token.indexOf('.', first + 1);
    return first > 0 && second > first + 1 && second < token.length() - 1 && token.indexOf('.', second + 1) < 0;
  }

  /** The tenant the verified token names; UNAUTHENTICATED (with the reason, never the token) when it does not verify. */
  String tenantOf(String token) {
    JWTClaimsSet claims;
    try {
      claims = processor.process(token, null);
    } catch (ParseException | BadJOSEException | JOSEException e) {
      throw Status.UNAUTHENTICATED.withDescription("invalid JWT: " + e.getMessage()).asRuntimeException();
    }
    Object tenant = claims.getClaim(tenantClaim);
    if (!(tenant instanceof String name) || !TENANT.matcher(name).matches()) {
      throw Status.UNAUTHENTICATED.withDescription("invalid JWT: claim " + tenantClaim + " must name a tenant").asRuntimeException();
    }
    return name;
  }

  private JWKSet currentKeys() {
    long now = System.nanoTime();
    if (now - nextCheckNanos >= 0) {
      nextCheckNanos = now + TimeUnit.SECONDS.toNanos(RECHECK_SECONDS);
      try {
        FileTime time = Files.getLastModifiedTime(jwksFile);
        if (!time.equals(keysTime)) {
          keys = JWKSet.load(jwksFile.toFile()).toPublicJWKSet();
          keysTime = time;
          LOG.info("JWK set reloaded from {}", jwksFile);
        }
      } catch (IOException | ParseException e) {
        LOG.warn("JWK set {} changed but cannot be read; keeping the previous keys: {}", jwksFile, e.toString());
      }
    }
    return keys;
  }
}
