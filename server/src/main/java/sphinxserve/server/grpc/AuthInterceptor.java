package sphinxserve.server.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import sphinxserve.server.auth.Authenticator;
import sphinxserve.server.auth.JwtAuthenticator;
import sphinxserve.server.auth.Tenant;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.telemetry.RequestTelemetry;

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
public final class AuthInterceptor implements ServerInterceptor {

  /** The header carrying the credentials. */
  public static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);


  private final Authenticator authenticator;
  private final boolean checkMethods;

  /**
   * @param tenants the API-key tenants, or null when only JWTs are accepted
   * @param jwt the JWT verifier, or null when only API keys are accepted
   * @param checkMethods whether to check the tenant's {@code methods} (false for reflection)
   */
  public AuthInterceptor(Tenants tenants, JwtAuthenticator jwt, boolean checkMethods) {
    this.authenticator = new Authenticator(tenants, jwt);
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

  /** The tenant {@code authorization} proves, or UNAUTHENTICATED ({@link Authenticator#authenticate}). */
  public Tenant authenticate(String authorization) {
    return authenticator.authenticate(authorization);
  }
}
