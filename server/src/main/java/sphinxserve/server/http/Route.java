package sphinxserve.server.http;

import io.netty.handler.codec.http.HttpMethod;

/**
 * What the HTTP face serves, decided from the request line alone (so {@link HeadGuard} can refuse an unknown path or
 * a wrong method before any body is read): the two generation endpoints, the model list, the chat page's files.
 */
enum Route {
  /** {@code POST /v1/chat/completions}. */
  CHAT(HttpMethod.POST, "Generate"),
  /** {@code POST /v1/completions}. */
  COMPLETIONS(HttpMethod.POST, "Generate"),
  /** {@code GET /v1/models}. */
  MODELS(HttpMethod.GET, "GetModelInfo"),
  /** {@code GET} of a chat page file ({@link WebPage#FILES}); static, so without credentials. */
  PAGE(HttpMethod.GET, null);

  /** The one method the route takes. */
  final HttpMethod method;
  /** The tenant permission it needs (gRPC's method name), or null when it needs no credentials. */
  final String permission;

  Route(HttpMethod method, String permission) {
    this.method = method;
    this.permission = permission;
  }

  /** The route of {@code path} (query string removed), or null when nothing is served there. */
  static Route of(String path) {
    return switch (path) {
      case "/v1/chat/completions" -> CHAT;
      case "/v1/completions" -> COMPLETIONS;
      case "/v1/models" -> MODELS;
      default -> path.equals("/") || WebPage.FILES.contains(path) ? PAGE : null;
    };
  }

  /** Whether the route runs a generation. */
  boolean generates() {
    return this == CHAT || this == COMPLETIONS;
  }
}
