package sphinxserve.server.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpServerKeepAliveHandler;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.ssl.SslContext;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TextTokenizer;
import sphinxserve.server.auth.Authenticator;
import sphinxserve.server.auth.TenantLimiters;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.GenerateCalls;
import sphinxserve.server.generate.GenerationBackend;
import sphinxserve.server.generate.InFlightCalls;
import sphinxserve.server.telemetry.Telemetry;

/**
 * The OpenAI-compatible HTTP API beside the gRPC one (Netty's HTTP/1.1; JSON by Jackson): {@code POST
 * /v1/chat/completions}, {@code POST /v1/completions}, {@code GET /v1/models}, and the chat page at {@code GET /}
 * ({@link WebPage}). A thin adapter: each request becomes {@code GenerateRequest}s ({@link OpenAiRequests}) that go
 * through the same path as gRPC's ({@link GenerateCalls}), with the same credentials, tenant limits, draining and
 * request log line (protocol {@code http}).
 *
 * <p>Each connection's pipeline, as Netty's own HTTP/1.1 servers are built (every handler is there for a hostile
 * client as much as for a correct one):
 * <pre>
 *   [TLS] → HttpServerCodec → HttpServerKeepAliveHandler → HeadGuard → BodyLimitAggregator → ExchangeQueue
 * </pre>
 * {@link ConnectionCap} closes a connection over {@code --http-max-connections} before its pipeline exists.
 * {@code HttpServerCodec} parses with bounded request lines (4 KiB), headers ({@code --max-metadata-bytes}) and
 * chunks. {@code HttpServerKeepAliveHandler} keeps connections alive by HTTP/1.1's rules and closes them after a
 * response to {@code Connection: close} (and after every refusal, which says so). {@link HeadGuard} decides all a
 * head decides (Host, Origin, route, method, credentials, content type, declared size) before the body is read.
 * {@link BodyLimitAggregator} (Netty's {@code HttpObjectAggregator}) buffers an admitted body up to
 * {@code --max-message-bytes}, refusing a chunked one as it passes the limit. {@link ExchangeQueue} answers one
 * request at a time in order, keeps reading so a client's close is seen at once, and runs the idle/read timeout
 * ({@code --http-idle-timeout}). Netty's {@code WriteBufferWaterMark} (32–64 KiB per connection) makes a channel
 * unwritable when its client falls behind, past a fixed kernel send buffer ({@link #SEND_BUFFER_BYTES}); {@link HttpSink} then stops writing, and ends a stream whose client
 * stopped reading. Parsing, template rendering and tokenising run on {@link #PREPARE_THREADS} platform threads of
 * this server's own, JSON formatting and writes on the node's worker executor, never on the engine thread or these
 * two event loops.
 */
public final class OpenAiHttpServer implements AutoCloseable {

  /** Netty's per-connection write buffer: unwritable above the high mark, writable again below the low one. */
  static final WriteBufferWaterMark WATER_MARK = new WriteBufferWaterMark(32 * 1024, 64 * 1024);

  /**
   * The kernel's send buffer per connection. Set, it turns off Linux's autotuning, which would let an unread stream
   * park up to {@code tcp_wmem}'s maximum (4 MiB by default) in the kernel per connection before Netty's water mark
   * is ever reached; token streams and JSON bodies need far less bandwidth than 64 KiB per round trip carries.
   */
  static final int SEND_BUFFER_BYTES = 64 * 1024;

  /**
   * Threads that parse, render and tokenise requests: half the cores, at least one. This work is CPU-bound and may
   * take a whole render budget or a 16 MiB body's parse; on the node's virtual-thread executor it would hold its
   * carrier threads (one per core, never preempted) while every stream's next tokens wait there to be formatted and
   * sent. Here it is preempted like any thread and leaves the other cores to the engine and to the streams; a burst
   * of heavy requests delays the start of new requests, not the tokens of running ones. Each connection has at most
   * one request here at a time, so the connection cap bounds the queue.
   */
  static final int PREPARE_THREADS = Math.max(1, Runtime.getRuntime().availableProcessors() / 2);

  /** Longest request line (method, URL, version) accepted. */
  private static final int MAX_REQUEST_LINE = 4096;

  private final ModelSpec spec;
  private final String modelName;
  private final GenerateExchange.Services services;
  private final ExecutorService preparers =
      Executors.newFixedThreadPool(PREPARE_THREADS, Thread.ofPlatform().name("sphinx-http-prepare-", 0).daemon().factory());
  private final EventLoopGroup group = new NioEventLoopGroup(2, Thread.ofPlatform().name("sphinx-http-", 0).daemon().factory());
  private final Channel server;

  /**
   * Listens on {@code config.httpPort()} (loopback only for plaintext unless all interfaces were asked for, as gRPC).
   *
   * @param auth the credentials check, or null when the node does not authenticate
   * @param executor the worker executor for response formatting and writes (the node's stream executor, shared with
   *     gRPC)
   */
  public OpenAiHttpServer(NodeConfig config, SslContext ssl, ModelSpec spec, String modelName, TextTokenizer tokenizer, GenerateCalls calls,
      GenerationBackend backend, Authenticator auth, TenantLimiters limiters, Telemetry telemetry, BooleanSupplier draining,
      InFlightCalls inFlight, Executor executor) {
    this.spec = spec;
    this.modelName = modelName;
    this.services = new GenerateExchange.Services(spec, OpenAiRequests.Limits.of(config, calls.toolCallSyntax()), modelName, tokenizer, calls, backend, limiters, telemetry, draining, inFlight, preparers,
        executor, config.httpRequestTimeout(), config.httpMaxUnsentTokens());
    boolean everywhere = ssl != null || config.plaintext() == NodeConfig.Plaintext.ALL_INTERFACES;
    InetSocketAddress address = everywhere ? new InetSocketAddress(config.httpPort())
        : new InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), config.httpPort());
    HostPolicy policy = HostPolicy.of(address, auth != null, config.httpAllowedHosts(), config.httpCorsOrigins());
    ConnectionCap cap = new ConnectionCap(config.httpMaxConnections());
    int maxBody = config.maxMessageBytes();
    Duration idleTimeout = config.httpIdleTimeout();
    try {
      this.server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
          .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
          .childOption(ChannelOption.SO_SNDBUF, SEND_BUFFER_BYTES)
          .childHandler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
              if (!cap.admit(ch)) return;
              if (ssl != null) ch.pipeline().addLast(ssl.newHandler(ch.alloc()));
              ExchangeQueue queue = new ExchangeQueue(idleTimeout, maxBody, OpenAiHttpServer.this::exchange);
              HeadGuard guard = new HeadGuard(policy, auth, maxBody, queue);
              ch.pipeline().addLast(new HttpServerCodec(MAX_REQUEST_LINE, config.maxMetadataBytes(), 8192))
                  .addLast(new HttpServerKeepAliveHandler())
                  .addLast(guard)
                  .addLast(new BodyLimitAggregator(maxBody, guard::discardRest))
                  .addLast(queue);
            }
          })
          .bind(address).sync().channel();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
      preparers.shutdown();
      throw new IllegalStateException("interrupted while binding the HTTP port", e);
    } catch (Exception e) { // Netty rethrows the bind's IOException unchecked
      group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
      preparers.shutdown();
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
    preparers.shutdown(); // a request still queued runs, finds its connection closed or the node draining, and ends
  }

  /** The exchange answering an admitted request. */
  private Exchange exchange(Channel channel, Admitted head, FullHttpRequest request, Runnable onEnd) {
    if (head.route().generates() && !head.preflight()) return new GenerateExchange(services, channel, head, request, onEnd);
    String path = new QueryStringDecoder(request.uri()).path();
    String requestedHeaders = request.headers().get(HttpHeaderNames.ACCESS_CONTROL_REQUEST_HEADERS);
    request.release(); // nothing else reads a body
    FullHttpResponse response;
    if (head.preflight()) {
      response = preflight(head, requestedHeaders);
    } else if (head.route() == Route.MODELS) {
      ObjectNode body = OpenAiResponses.JSON.createObjectNode().put("object", "list");
      body.putArray("data").addObject().put("id", modelName).put("object", "model").put("created", 0)
          .put("owned_by", "sphinx-serve").put("max_model_len", spec.maxContextTokens());
      response = HttpReplies.json(HttpResponseStatus.OK, body);
    } else {
      response = page(path.equals("/") ? "/index.html" : path);
    }
    head.decorate(response.headers());
    return new FixedExchange(channel, response, false, onEnd);
  }

  /**
   * The answer to a CORS preflight: what an allowed origin may send (no body, cached by the browser for 10 minutes).
   * The headers the browser asks for ({@code requestedHeaders}, or null) are allowed as asked: the origin is trusted,
   * and a fixed list would break a client that sends one more (OpenAI's SDKs send several {@code x-stainless-*}).
   */
  private static FullHttpResponse preflight(Admitted head, String requestedHeaders) {
    FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.NO_CONTENT, Unpooled.EMPTY_BUFFER);
    response.headers().set(HttpHeaderNames.ALLOW, head.route().method + ", OPTIONS");
    if (head.corsOrigin() != null) {
      response.headers().set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_METHODS, "POST, GET")
          .set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_HEADERS, requestedHeaders == null || requestedHeaders.isBlank()
              ? "authorization, content-type, x-request-id" : requestedHeaders.trim())
          .add(HttpHeaderNames.VARY, HttpHeaderNames.ACCESS_CONTROL_REQUEST_HEADERS)
          .set(HttpHeaderNames.ACCESS_CONTROL_MAX_AGE, "600");
    }
    return response;
  }

  /** A file of the chat page, with its strict security headers ({@link WebPage#response}). */
  private static FullHttpResponse page(String file) {
    return WebPage.response(file);
  }
}
