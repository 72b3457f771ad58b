package sphinxserve.server;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;

/**
 * Authenticates each call's bearer credentials and puts its {@link Tenant} into the gRPC {@link Context}.
 *
 * <p>{@code authorization: Bearer <token>}: a token shaped like a JWT (three dot-separated parts) goes to the
 * {@link JwtAuthenticator} when the node has one; anything else is an API key, hashed and looked up in
 * {@link Tenants}. Outcomes: no or malformed header, unknown key, bad or expired JWT → UNAUTHENTICATED (the
 * message never says which tenants exist); a known tenant calling a method its {@code methods} leave out →
 * PERMISSION_DENIED. The health service is never behind this interceptor; reflection is when
 * {@code --reflection=authenticated} (any tenant may use it). The tenant also goes to the call's
 * {@link RequestTelemetry} for the log line.
 */
final class AuthInterceptor implements ServerInterceptor {

  /** The header carrying the credentials. */
  static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private static final String BEARER = "bearer ";

  private final Tenants tenants;
  private final JwtAuthenticator jwt;
  private final boolean checkMethods;

  /**
   * @param tenants the API-key tenants, or null when only JWTs are accepted
   * @param jwt the JWT verifier, or null when only API keys are accepted
   * @param checkMethods whether to check the tenant's {@code methods} (false for reflection)
   */
  AuthInterceptor(Tenants tenants, JwtAuthenticator jwt, boolean checkMethods) {
    if (tenants == null && jwt == null) throw new IllegalArgumentException("no way to authenticate");
    this.tenants = tenants;
    this.jwt = jwt;
    this.checkMethods = checkMethods;
  }

  @Override
  public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(ServerCall<ReqT, RespT> call, Metadata headers,
      ServerCallHandler<ReqT, RespT> next) {
    Tenant tenant;
    try {
      tenant = authenticate(headers.get(AUTHORIZATION));
      String method = call.getMethodDescriptor().getBareMethodName();
      if (checkMethods && !tenant.allows(method)) {
        RequestTelemetry.current().tenant(tenant.name());
        throw Status.PERMISSION_DENIED.withDescription("tenant " + tenant.name() + " may not call " + method).asRuntimeException();
      }
    } catch (io.grpc.StatusRuntimeException e) {
      call.close(e.getStatus(), new Metadata());
      return new ServerCall.Listener<>() {};
    }
    RequestTelemetry.current().tenant(tenant.name());
    return Contexts.interceptCall(Context.current().withValue(Tenant.KEY, tenant), call, headers, next);
  }

  /** The tenant {@code authorization} proves, or UNAUTHENTICATED. */
  Tenant authenticate(String authorization) {
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
