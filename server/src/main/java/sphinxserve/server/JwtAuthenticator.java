package sphinxserve.server;

/** Verifies JWTs and names their tenant (see the implementation added with JWT support). */
final class JwtAuthenticator {

  private JwtAuthenticator() {}

  /** Whether {@code token} has a JWT's shape: three base64url parts separated by dots. */
  static boolean looksLikeJwt(String token) {
    int first = token.indexOf('.');
    int second = first < 0 ? -1 : token.indexOf('.', first + 1);
    return first > 0 && second > first + 1 && token.indexOf('.', second + 1) < 0;
  }

  /** The tenant the verified token names; UNAUTHENTICATED when it does not verify. */
  String tenantOf(String token) {
    throw io.grpc.Status.UNAUTHENTICATED.withDescription("JWTs are not accepted by this node").asRuntimeException();
  }
}
