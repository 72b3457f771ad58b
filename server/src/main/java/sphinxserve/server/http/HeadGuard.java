package sphinxserve.server.http;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.util.ReferenceCountUtil;
import java.util.Locale;
import java.util.UUID;
import sphinxserve.server.auth.Authenticator;
import sphinxserve.server.auth.Tenant;

/**
 * Decides everything a request's head decides, before its body is read or buffered; it sits between Netty's
 * {@code HttpServerCodec} (and keep-alive handler) and the {@code HttpObjectAggregator}. In order: a head the codec
 * could not parse (431 headers too large, 414 request line too long, 400 otherwise); {@code Host} missing (400) or,
 * on a node without authentication, not the node's own name (403, {@link HostPolicy}); a foreign {@code Origin} not
 * in {@code --http-cors-origins} (403); the route (404) and method (405, with {@code Allow}); credentials (401 / 403
 * through the node's {@link Authenticator}, so an unauthenticated client cannot make the node buffer a body);
 * {@code Content-Type} on a POST, which must be {@code application/json} (UTF-8) — a web page may POST
 * {@code text/plain} to any site without a preflight, never JSON (415); {@code Content-Length} over the body limit
 * (413, before a byte of the body). A refusal carries OpenAI's error body, is answered in its turn behind earlier
 * pipelined requests, and closes the connection: nothing after it on the connection is read into the pipeline.
 * A CORS preflight ({@code OPTIONS} from an allowed origin) is admitted as such and answered by the exchange queue.
 */
final class HeadGuard extends ChannelInboundHandlerAdapter {

  private final HostPolicy policy;
  private final Authenticator auth;
  private final int maxBodyBytes;
  private final ExchangeQueue queue;
  private boolean discarding;

  /**
   * @param auth the credentials check, or null when the node does not authenticate
   * @param maxBodyBytes the largest body accepted ({@code --max-message-bytes})
   * @param queue where admitted heads are announced
   */
  HeadGuard(HostPolicy policy, Authenticator auth, int maxBodyBytes, ExchangeQueue queue) {
    this.policy = policy;
    this.auth = auth;
    this.maxBodyBytes = maxBodyBytes;
    this.queue = queue;
  }

  /** Drops everything the connection sends from now on (a refusal was queued; the connection closes after it). */
  void discardRest() {
    discarding = true;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (discarding) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (!(msg instanceof HttpRequest head)) {
      ctx.fireChannelRead(msg); // body parts of an admitted request
      return;
    }
    Object verdict = check(head);
    if (verdict instanceof Admitted admitted) {
      queue.expect(admitted);
      ctx.fireChannelRead(msg);
    } else {
      Refused refused = (Refused) verdict;
      ReferenceCountUtil.release(msg);
      discardRest();
      var response = HttpReplies.closing(refused.status(), refused.error());
      response.headers().set("x-request-id", requestId(head.headers()));
      if (refused.status().equals(HttpResponseStatus.METHOD_NOT_ALLOWED)) {
        response.headers().set(HttpHeaderNames.ALLOW, Route.of(new QueryStringDecoder(head.uri()).path()).method.name());
      }
      ctx.fireChannelRead(new ExchangeQueue.Refusal(response));
    }
  }

  /** A refusal: the HTTP status and the error it carries. */
  private record Refused(HttpResponseStatus status, Status error) {}

  /** The {@link Admitted} head, or why it is {@link Refused}. */
  private Object check(HttpRequest head) {
    DecoderResult decoded = head.decoderResult();
    if (decoded.isFailure()) {
      Throwable cause = decoded.cause();
      if (cause instanceof TooLongHttpHeaderException) {
        return new Refused(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, invalid("headers: larger than the node accepts (--max-metadata-bytes)"));
      }
      if (cause instanceof TooLongHttpLineException) {
        return new Refused(HttpResponseStatus.REQUEST_URI_TOO_LONG, invalid("url: the request line is too long"));
      }
      return new Refused(HttpResponseStatus.BAD_REQUEST, invalid("request: not valid HTTP/1.1: " + cause.getMessage()));
    }
    HttpHeaders headers = head.headers();
    String host = headers.get(HttpHeaderNames.HOST);
    if (host == null || host.isBlank()) {
      if (head.protocolVersion().equals(HttpVersion.HTTP_1_1) || auth == null) {
        return new Refused(HttpResponseStatus.BAD_REQUEST, invalid("host: the Host header is required"));
      }
    } else {
      String refusal = policy.hostRefusal(host);
      if (refusal != null) return new Refused(HttpResponseStatus.FORBIDDEN, Status.PERMISSION_DENIED.withDescription(refusal));
    }
    String origin = headers.get(HttpHeaderNames.ORIGIN);
    HostPolicy.OriginVerdict verdict = policy.origin(origin, host);
    if (verdict == HostPolicy.OriginVerdict.REFUSED) {
      return new Refused(HttpResponseStatus.FORBIDDEN, Status.PERMISSION_DENIED.withDescription("cross-origin requests from " + origin
          + " are not allowed; list the origin in --http-cors-origins to allow them"));
    }
    String path = new QueryStringDecoder(head.uri()).path();
    Route route = Route.of(path);
    if (route == null) {
      return new Refused(HttpResponseStatus.NOT_FOUND, Status.NOT_FOUND.withDescription("no route " + path
          + " (this node serves /v1/chat/completions, /v1/completions, /v1/models)"));
    }
    String requestId = requestId(headers);
    String corsOrigin = verdict == HostPolicy.OriginVerdict.ALLOWED ? origin.trim() : null;
    if (head.method().equals(HttpMethod.OPTIONS)) return new Admitted(route, true, Tenant.ANONYMOUS, requestId, corsOrigin);
    if (!head.method().equals(route.method)) {
      return new Refused(HttpResponseStatus.METHOD_NOT_ALLOWED, Status.INVALID_ARGUMENT.withDescription(path + " takes " + route.method));
    }
    Tenant tenant = Tenant.ANONYMOUS;
    if (auth != null && route.permission != null) {
      try {
        tenant = auth.authenticate(headers.get(HttpHeaderNames.AUTHORIZATION));
      } catch (StatusRuntimeException e) {
        return new Refused(OpenAiResponses.httpStatus(e.getStatus().getCode()), e.getStatus());
      }
      if (!tenant.allows(route.permission)) {
        return new Refused(HttpResponseStatus.FORBIDDEN, Status.PERMISSION_DENIED.withDescription("tenant " + tenant.name()
            + " may not call " + route.permission));
      }
    }
    if (head.method().equals(HttpMethod.POST)) {
      String type = headers.get(HttpHeaderNames.CONTENT_TYPE);
      if (!isJson(type)) {
        return new Refused(HttpResponseStatus.UNSUPPORTED_MEDIA_TYPE, invalid("content-type: must be application/json, got "
            + (type == null ? "none" : "'" + type + "'")));
      }
    }
    long length = HttpUtil.getContentLength(head, -1L);
    if (length > maxBodyBytes) {
      return new Refused(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, invalid("body: " + length + " bytes, at most " + maxBodyBytes
          + " (--max-message-bytes)"));
    }
    return new Admitted(route, false, tenant, requestId, corsOrigin);
  }

  /** The client's {@code x-request-id} when it is usable (1..128 characters), else a new random one. */
  private static String requestId(HttpHeaders headers) {
    String id = headers.get("x-request-id");
    return id == null || id.isBlank() || id.length() > 128 ? UUID.randomUUID().toString() : id;
  }

  /** {@code application/json}, optionally with {@code charset=utf-8}: JSON is UTF-8 (RFC 8259). */
  static boolean isJson(String contentType) {
    if (contentType == null) return false;
    String[] parts = contentType.toLowerCase(Locale.ROOT).split(";");
    if (!parts[0].trim().equals("application/json")) return false;
    for (int i = 1; i < parts.length; i++) {
      String p = parts[i].trim();
      if (p.startsWith("charset=") && !p.substring(8).replace("\"", "").trim().equals("utf-8")) return false;
    }
    return true;
  }

  private static Status invalid(String description) {
    return Status.INVALID_ARGUMENT.withDescription(description);
  }
}
