package sphinxserve.server.http;

import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The chat page's files, shipped in the node's jar under {@code /sphinxserve/server/web/}: plain HTML, CSS and
 * JavaScript modules, so the Maven build has no Node step. Read once, kept in memory (a few kilobytes).
 *
 * <p>Served with a strict policy ({@link #securityHeaders}): the page only loads its own files and talks to its own
 * node, so nothing else is allowed: no inline script or style, no other origin, no framing (clickjacking: a page that
 * frames the chat could trick a user into sending), no MIME sniffing, no referrer. The API key a user types is kept
 * in the tab's {@code sessionStorage} and sent as {@code Authorization: Bearer}, never in a URL.
 */
final class WebPage {

  /** The files served, by path. */
  static final List<String> FILES = List.of("/index.html", "/app.js", "/outputs.js", "/style.css");

  /**
   * The page's Content-Security-Policy: its own scripts, styles and API only; images also from {@code data:} and
   * {@code blob:} (the picked file is shown from a data URL); no plugins, no base or form targets, no framing.
   */
  static final String CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; "
      + "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

  private static final HttpHeaders SECURITY_HEADERS = new DefaultHttpHeaders()
      .set("content-security-policy", CONTENT_SECURITY_POLICY)
      .set("x-content-type-options", "nosniff")
      .set("x-frame-options", "DENY") // frame-ancestors for browsers that predate it
      .set("referrer-policy", "no-referrer")
      .set("cross-origin-opener-policy", "same-origin");

  private static final Map<String, byte[]> CACHE = new ConcurrentHashMap<>();

  private WebPage() {}

  /** The bytes of {@code path}, one of {@link #FILES}. */
  public static byte[] file(String path) {
    if (!FILES.contains(path)) throw new IllegalArgumentException("not a page file: " + path);
    return CACHE.computeIfAbsent(path, p -> {
      try (InputStream in = WebPage.class.getResourceAsStream("/sphinxserve/server/web" + p)) {
        if (in == null) throw new IllegalStateException("the jar lacks the page file " + p);
        return in.readAllBytes();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    });
  }

  /** The media type of a page file. */
  static String contentType(String path) {
    if (path.endsWith(".html")) return "text/html; charset=utf-8";
    if (path.endsWith(".js")) return "text/javascript; charset=utf-8";
    if (path.endsWith(".css")) return "text/css; charset=utf-8";
    return "application/octet-stream";
  }

  /** The headers every page file is served with (a copy: callers may add to it). */
  static HttpHeaders securityHeaders() {
    return new DefaultHttpHeaders().set(SECURITY_HEADERS);
  }

  /**
   * The whole {@code 200} response for the page file {@code path}: its bytes, media type, length, {@code no-cache} and
   * {@link #securityHeaders}. The caller adds {@code Connection: close} when it closes.
   */
  static FullHttpResponse response(String path) {
    byte[] bytes = file(path);
    FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, Unpooled.wrappedBuffer(bytes));
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType(path))
        .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length)
        .set(HttpHeaderNames.CACHE_CONTROL, "no-cache")
        .setAll(SECURITY_HEADERS);
    return response;
  }
}
