package sphinxserve.server.http;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The chat page's files, shipped in the node's jar under {@code /sphinxserve/server/web/}: plain HTML, CSS and
 * JavaScript modules, so the Maven build has no Node step. Read once, kept in memory (a few kilobytes).
 */
final class WebPage {

  /** The files served, by path. */
  static final List<String> FILES = List.of("/index.html", "/app.js", "/outputs.js", "/style.css");

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
}
