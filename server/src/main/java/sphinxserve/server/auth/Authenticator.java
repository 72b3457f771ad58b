package sphinxserve.server.auth;

import io.grpc.Status;

/**
 * Bearer credentials to a {@link Tenant}, for both protocols (gRPC's {@code authorization} metadata, the HTTP API's
 * header): {@code Bearer <token>}, a token shaped like a JWT (three dot-separated parts) going to the
 * {@link JwtAuthenticator} when the node has one, anything else being an API key hashed and looked up in
 * {@link Tenants}. Refusals are gRPC statuses (UNAUTHENTICATED, PERMISSION_DENIED) thrown as exceptions; the HTTP
 * API maps them to 401 and 403. The message never says which tenants exist.
 */
public final class Authenticator {

  private static final String BEARER = "bearer ";

  private final Tenants tenants;
  private final JwtAuthenticator jwt;

  /**
   * @param tenants the API-key tenants, or null when only JWTs are accepted
   * @param jwt the JWT verifier, or null when only API keys are accepted
   */
  public Authenticator(Tenants tenants, JwtAuthenticator jwt) {
    if (tenants == null && jwt == null) throw new IllegalArgumentException("no way to authenticate");
    this.tenants = tenants;
    this.jwt = jwt;
  }

  /** The tenant {@code authorization} proves, or a StatusRuntimeException (UNAUTHENTICATED, PERMISSION_DENIED). */
  public Tenant authenticate(String authorization) {
    if (authorization == null) {
      throw Status.UNAUTHENTICATED.withDescription("missing credentials: send the header 'authorization: Bearer <key or JWT>'").asRuntimeException();
    }
    if (authorization.length() <= BEARER.length() || !authorization.regionMatches(true, 0, BEARER, 0, BEARER.length())) {
      throw Status.UNAUTHENTICATED.withDescription("malformed authorization header: expected 'Bearer <key or JWT>'").asRuntimeException();
    }
    String token = authorization.substring(BEARER.length()).trim();
    if (jwt != null && JwtAuthenticator.looksLikeJwt(token)) {
      String name = jwt.tenantOf(token); // UNAUTHENTICATED when the token does not verify
      Tenant tenant = tenants == null ? null : tenants.byName(name);
      if (tenant != null) return tenant;
      if (tenants == null) return new Tenant(name, java.util.Set.of(Tenant.ALL_METHODS), TenantLimits.NONE);
      throw Status.PERMISSION_DENIED.withDescription("tenant " + name + " is not configured on this node").asRuntimeException();
    }
    Tenant tenant = tenants == null ? null : tenants.byKey(token);
    if (tenant == null) throw Status.UNAUTHENTICATED.withDescription("invalid credentials").asRuntimeException();
    return tenant;
  }
}
