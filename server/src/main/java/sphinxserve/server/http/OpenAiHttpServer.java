package sphinxserve.server.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufInputStream;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.ssl.SslContext;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TextTokenizer;
import sphinxserve.server.auth.Authenticator;
import sphinxserve.server.auth.Tenant;
import sphinxserve.server.auth.TenantLimiter;
import sphinxserve.server.auth.TenantLimiters;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.GenerateCalls;
import sphinxserve.server.generate.GenerationBackend;
import sphinxserve.server.generate.InFlightCalls;
import sphinxserve.server.generate.RequestException;
import sphinxserve.server.telemetry.RequestTelemetry;
import sphinxserve.server.telemetry.Telemetry;

/**
 * The OpenAI-compatible HTTP API beside the gRPC one (Netty's HTTP/1.1 codec; JSON by Jackson): {@code POST
 * /v1/chat/completions}, {@code POST /v1/completions}, {@code GET /v1/models}. A thin adapter: each request becomes a
 * {@code GenerateRequest} ({@link OpenAiRequests}) and goes through the same path as gRPC's ({@link GenerateCalls}:
 * validation, template, context, image cache, engine), with the same bearer credentials, tenant limits, draining and
 * request log line (protocol {@code http}).
 *
 * <p>{@code GET /} serves the chat page ({@link WebPage}).
 *
 * <p>One request at a time per connection: reading pauses while an answer streams, so a pipelining client cannot
 * interleave two responses. A connection that closes aborts its request within a step.
 */
public final class OpenAiHttpServer implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(OpenAiHttpServer.class);

  /** Reads trace context from HTTP headers. */
  private static final io.opentelemetry.context.propagation.TextMapGetter<io.netty.handler.codec.http.HttpHeaders> HEADERS =
      new io.opentelemetry.context.propagation.TextMapGetter<>() {
        @Override
        public Iterable<String> keys(io.netty.handler.codec.http.HttpHeaders carrier) {
          return carrier.names();
        }

        @Override
        public String get(io.netty.handler.codec.http.HttpHeaders carrier, String key) {
          return carrier == null ? null : carrier.get(key);
        }
      };

  private final ModelSpec spec;
  private final String modelName;
  private final TextTokenizer tokenizer;
  private final GenerateCalls calls;
  private final GenerationBackend backend;
  private final Authenticator auth;
  private final TenantLimiters limiters;
  private final Telemetry telemetry;
  private final BooleanSupplier draining;
  private final InFlightCalls inFlight;
  private final OpenAiRequests.Limits limits;
  private final EventLoopGroup group = new NioEventLoopGroup(2, Thread.ofPlatform().name("sphinx-http-", 0).daemon().factory());
  private final Channel server;

  /**
   * Listens on {@code config.httpPort()} (loopback only for plaintext unless all interfaces were asked for, as gRPC).
   *
   * @param auth the credentials check, or null when the node does not authenticate
   */
  public OpenAiHttpServer(NodeConfig config, SslContext ssl, ModelSpec spec, String modelName, TextTokenizer tokenizer, GenerateCalls calls,
      GenerationBackend backend, Authenticator auth, TenantLimiters limiters, Telemetry telemetry, BooleanSupplier draining,
      InFlightCalls inFlight) {
    this.spec = spec;
    this.modelName = modelName;
    this.tokenizer = tokenizer;
    this.calls = calls;
    this.backend = backend;
    this.auth = auth;
    this.limiters = limiters;
    this.telemetry = telemetry;
    this.draining = draining;
    this.inFlight = inFlight;
    this.limits = OpenAiRequests.Limits.of(config);
    boolean everywhere = ssl != null || config.plaintext() == NodeConfig.Plaintext.ALL_INTERFACES;
    InetSocketAddress address = everywhere ? new InetSocketAddress(config.httpPort())
        : new InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), config.httpPort());
    int maxBody = config.maxMessageBytes();
    try {
      this.server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
          .childHandler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
              if (ssl != null) ch.pipeline().addLast(ssl.newHandler(ch.alloc()));
              ch.pipeline().addLast(new HttpServerCodec(4096, config.maxMetadataBytes(), 8192))
                  .addLast(new HttpObjectAggregator(maxBody))
                  .addLast(new Handler());
            }
          })
          .bind(address).sync().channel();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
      throw new IllegalStateException("interrupted while binding the HTTP port", e);
    } catch (Exception e) { // Netty rethrows the bind's IOException unchecked
      group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
      throw new UncheckedIOException("cannot listen on HTTP port " + config.httpPort() + ": " + e.getMessage(),
          e instanceof IOException io ? io : new IOException(e));
    }
  }

  /** The port listened on. */
  public int port() {
    return ((InetSocketAddress) server.localAddress()).getPort();
  }

  /** Stops accepting connections; requests in flight end with their streams (the node drains them). */
  @Override
  public void close() {
    server.close().syncUninterruptibly();
    group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
  }

  /** Routes one request. */
  private final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
      String path = new QueryStringDecoder(request.uri()).path();
      boolean keepAlive = HttpUtil.isKeepAlive(request);
      String requestId = request.headers().get("x-request-id");
      if (requestId == null || requestId.isBlank() || requestId.length() > 128) requestId = UUID.randomUUID().toString();
      switch (path) {
        case "/v1/chat/completions", "/v1/completions" -> {
          if (!request.method().equals(HttpMethod.POST)) {
            respond(ctx, keepAlive, requestId, HttpResponseStatus.METHOD_NOT_ALLOWED, OpenAiResponses.error(Status.INVALID_ARGUMENT.withDescription(path + " takes POST")), null);
            return;
          }
          generate(ctx, request, path, keepAlive, requestId);
        }
        case "/v1/models" -> {
          Status refused = authenticate(request, "GetModelInfo");
          if (refused != null) {
            respond(ctx, keepAlive, requestId, OpenAiResponses.httpStatus(refused.getCode()), OpenAiResponses.error(refused), null);
            return;
          }
          ObjectNode body = OpenAiResponses.JSON.createObjectNode().put("object", "list");
          body.putArray("data").addObject().put("id", modelName).put("object", "model").put("created", 0)
              .put("owned_by", "sphinx-serve").put("max_model_len", spec.maxContextTokens());
          respond(ctx, keepAlive, requestId, HttpResponseStatus.OK, body, null);
        }
        case "/", "/index.html", "/app.js", "/outputs.js", "/style.css" -> page(ctx, path.equals("/") ? "/index.html" : path, keepAlive);
        default -> respond(ctx, keepAlive, requestId, HttpResponseStatus.NOT_FOUND,
            OpenAiResponses.error(Status.NOT_FOUND.withDescription("no route " + path + " (this node serves /v1/chat/completions, /v1/completions, /v1/models)")), null);
      }
    }

    private void generate(ChannelHandlerContext ctx, FullHttpRequest request, String path, boolean keepAlive, String requestId) {
      long arrival = System.nanoTime();
      String method = "POST " + path;
      // A caller's W3C trace context (traceparent) continues here, as over gRPC.
      io.opentelemetry.context.Context parent = telemetry.propagator().extract(io.opentelemetry.context.Context.root(),
          request.headers(), HEADERS);
      RequestTelemetry telemetryOfCall = new RequestTelemetry(telemetry, RequestTelemetry.serverSpan(telemetry, method, parent),
          method, arrival, "http");
      telemetryOfCall.requestId(requestId);
      OpenAiResponses.Kind kind = path.endsWith("/chat/completions") ? OpenAiResponses.Kind.CHAT : OpenAiResponses.Kind.COMPLETION;
      // Counted before the draining check, as gRPC's Generate: a drain that starts meanwhile still waits for this call.
      inFlight.enter();
      HttpSink early = new HttpSink(ctx.channel(), null, null, keepAlive, requestId, telemetryOfCall, null, inFlight::exit, s -> {});
      if (draining.getAsBoolean()) {
        early.fail(Status.UNAVAILABLE.withDescription("node is draining; retry on another node"));
        return;
      }
      Tenant tenant = Tenant.ANONYMOUS;
      if (auth != null) {
        try {
          tenant = auth.authenticate(request.headers().get(HttpHeaderNames.AUTHORIZATION));
          telemetryOfCall.tenant(tenant.name());
          if (!tenant.allows("Generate")) throw Status.PERMISSION_DENIED.withDescription("tenant " + tenant.name() + " may not call Generate").asRuntimeException();
        } catch (StatusRuntimeException e) {
          early.fail(e.getStatus());
          return;
        }
      }
      OpenAiRequests.Parsed parsed;
      JsonNode body;
      try {
        body = OpenAiResponses.JSON.readTree(new ByteBufInputStream(request.content()));
        if (body == null || !body.isObject()) throw RequestException.invalid("body", "must be a JSON object");
        String model = body.path("model").asText("");
        if (!model.isEmpty() && !model.equals(modelName)) {
          throw RequestException.notFound("model", "the model '" + model + "' is not served here (this node serves '" + modelName + "')");
        }
        parsed = kind == OpenAiResponses.Kind.CHAT ? OpenAiRequests.chat(body, requestId, limits)
            : OpenAiRequests.completion(body, requestId, limits, tokenizer, spec.specialTokens());
      } catch (JsonProcessingException e) {
        early.fail(Status.INVALID_ARGUMENT.withDescription("body: not valid JSON: " + e.getOriginalMessage()));
        return;
      } catch (IOException e) {
        early.fail(Status.INVALID_ARGUMENT.withDescription("body: cannot be read: " + e.getMessage()));
        return;
      } catch (RequestException e) {
        early.fail(e.status());
        return;
      }
      TenantLimiter limiter = limiters.of(tenant);
      if (limiter != null) {
        TenantLimiter.Refusal refusal = limiter.admitRequest();
        if (refusal == null) refusal = limiter.admitStream();
        if (refusal != null) {
          early.respond(HttpResponseStatus.TOO_MANY_REQUESTS, OpenAiResponses.error(Status.RESOURCE_EXHAUSTED.withDescription(refusal.description())),
              Long.toString(Math.max(1, (refusal.retryAfterMillis() + 999) / 1000)));
          telemetryOfCall.closed(Status.RESOURCE_EXHAUSTED);
          inFlight.exit();
          return;
        }
      }
      Channel channel = ctx.channel();
      channel.config().setAutoRead(false); // one request at a time per connection
      OpenAiResponses format = new OpenAiResponses(kind, requestId, modelName, tokenizer, parsed);
      java.util.concurrent.atomic.AtomicReference<io.netty.channel.ChannelFutureListener> onClose = new java.util.concurrent.atomic.AtomicReference<>();
      HttpSink sink = new HttpSink(channel, format, parsed, keepAlive, requestId, telemetryOfCall, limiter, () -> {
        if (limiter != null) limiter.streamEnded();
        inFlight.exit();
        channel.closeFuture().removeListener(onClose.get()); // a keep-alive connection serves many requests
        channel.config().setAutoRead(true);
      }, backend::abort);
      onClose.set(f -> {
        sink.cancel(); // the client went away mid-answer
        sink.choices().forEach(backend::abort);
      });
      channel.closeFuture().addListener(onClose.get());
      // One engine request per choice; a prompt's choices share its KV blocks through the prefix cache.
      for (List<OpenAiRequests.ChoiceRequest> prompt : parsed.byPrompt()) {
        if (sink.choice(prompt.getFirst().index()).isCancelled()) break; // an earlier prompt failed the request, or the client left
        try {
          calls.startChoices(prompt.stream().map(OpenAiRequests.ChoiceRequest::request).toList(), tenant, arrival, Long.MAX_VALUE,
              telemetryOfCall, prompt.stream().map(c -> sink.choice(c.index())).toList());
        } catch (RuntimeException e) {
          sink.fail(GenerateCalls.internal(e));
        }
      }
    }

    /**
     * A file of the chat page (plain HTML, CSS and JavaScript modules from the jar; no build step). The page only talks
     * to this node's own API, so a strict content security policy costs it nothing.
     */
    private void page(ChannelHandlerContext ctx, String file, boolean keepAlive) {
      byte[] bytes = WebPage.file(file);
      io.netty.handler.codec.http.FullHttpResponse response = new io.netty.handler.codec.http.DefaultFullHttpResponse(
          io.netty.handler.codec.http.HttpVersion.HTTP_1_1, HttpResponseStatus.OK, io.netty.buffer.Unpooled.wrappedBuffer(bytes));
      response.headers().set(HttpHeaderNames.CONTENT_TYPE, WebPage.contentType(file))
          .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length)
          .set(HttpHeaderNames.CACHE_CONTROL, "no-cache")
          .setAll(WebPage.securityHeaders())
          .set("x-content-type-options", "nosniff");
      if (!keepAlive) response.headers().set(HttpHeaderNames.CONNECTION, "close");
      var written = ctx.writeAndFlush(response);
      if (!keepAlive) written.addListener(io.netty.channel.ChannelFutureListener.CLOSE);
    }

    private void respond(ChannelHandlerContext ctx, boolean keepAlive, String requestId, HttpResponseStatus status,
        ObjectNode body, String retryAfterSeconds) {
      HttpSink.respond(ctx.channel(), keepAlive, requestId, status, body, retryAfterSeconds);
    }

    /** The refusal status for {@code request}'s credentials calling {@code method}, or null when allowed. */
    private Status authenticate(FullHttpRequest request, String method) {
      if (auth == null) return null;
      try {
        Tenant tenant = auth.authenticate(request.headers().get(HttpHeaderNames.AUTHORIZATION));
        return tenant.allows(method) ? null : Status.PERMISSION_DENIED.withDescription("tenant " + tenant.name() + " may not call " + method);
      } catch (StatusRuntimeException e) {
        return e.getStatus();
      }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      LOG.debug("HTTP connection failed", cause);
      ctx.close();
    }
  }
}
