package sphinxserve.server.http;

import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import sphinxserve.server.auth.Tenant;

/**
 * What {@link HeadGuard} decided on a request's head, carried to the request once its body has arrived.
 *
 * @param route what is asked for
 * @param preflight a CORS preflight ({@code OPTIONS}) for {@code route}
 * @param tenant who is asking ({@link Tenant#ANONYMOUS} on a node without authentication)
 * @param requestId the client's {@code x-request-id} (at most 128 characters) or one the node made up
 * @param corsOrigin the allowed foreign origin to answer with CORS headers, or null for a same-origin request
 */
record Admitted(Route route, boolean preflight, Tenant tenant, String requestId, String corsOrigin) {

  /** Adds the headers every response to this request carries: its request id and, cross-origin, CORS. */
  void decorate(HttpHeaders headers) {
    headers.set("x-request-id", requestId);
    if (corsOrigin != null) {
      headers.set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_ORIGIN, corsOrigin).add(HttpHeaderNames.VARY, HttpHeaderNames.ORIGIN)
          .set(HttpHeaderNames.ACCESS_CONTROL_EXPOSE_HEADERS, "x-request-id");
    }
  }
}
