package sphinxserve.server;

import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Server;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.netty.handler.ssl.SslContext;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.bridge.SLF4JBridgeHandler;
import sphinxserve.api.ModelRuntime;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.engine.ModelMemory;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.server.auth.Authenticator;
import sphinxserve.server.auth.JwtAuthenticator;
import sphinxserve.server.auth.TenantLimiters;
import sphinxserve.server.auth.Tenants;
import sphinxserve.server.auth.TlsFiles;
import sphinxserve.server.config.HostMemory;
import sphinxserve.server.config.KvPoolSizing;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.generate.GenerationBackend;
import sphinxserve.server.grpc.AuthInterceptor;
import sphinxserve.server.grpc.LimitInterceptor;
import sphinxserve.server.grpc.ParseErrors;
import sphinxserve.server.grpc.SphinxService;
import sphinxserve.server.grpc.TracingInterceptor;
import sphinxserve.server.http.OpenAiHttpServer;
import sphinxserve.server.image.ImageCache;
import sphinxserve.server.telemetry.Telemetry;

/**
 * A running sphinx-serve node: the Netty gRPC server with {@code sphinx.v1.Sphinx}, {@code grpc.health.v1.Health}
 * and server reflection, over one model.
 *
 * <p>Lifecycle: {@link #open} loads the bundle, sizes ({@link KvPoolSizing}) and allocates the KV storage, opens
 * the ONNX Runtime model, builds the image cache and the backend, starts the server and only then reports SERVING. {@link #close} shuts down
 * in STYLE.md's order: health enters its terminal state (NOT_SERVING) → the service stops admitting
 * (UNAVAILABLE) → {@code server.shutdown()} → wait for in-flight Generate and PutImage calls up to
 * {@code --drain-seconds} → {@code shutdownNow()} (ends health watches and anything left) → backend → image
 * cache → telemetry (last spans flushed, {@code /metrics} closed) → ONNX sessions and native KV memory, only once
 * the engine's model step and the vision encoder's call in flight have returned (a run that outlives their close
 * waits is logged and its memory left to the process's exit, never freed under it). The
 * SIGTERM hook {@link #main} installs calls {@link #close}.
 *
 * <p>Failure: if the backend can no longer serve ({@link GenerationBackend#failure}), health turns NOT_SERVING at
 * once, the node drains and closes as above, and {@link #main} exits with {@value #EXIT_BACKEND_FAILED} so an
 * orchestrator restarts it.
 *
 * <p>Transport: plaintext, or TLS (HTTP/2 over TLS with ALPN, grpc-netty's {@code GrpcSslContexts}; {@link TlsFiles}) when
 * {@code --tls-cert} and {@code --tls-key} are set, mutual TLS with {@code --tls-client-ca}; the files are
 * reloaded when they change ({@code --tls-reload-seconds}).
 */
public final class SphinxNode implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(SphinxNode.class);

  /** Stack of the thread that opens the model (see {@link #main}). */
  private static final long OPEN_STACK_BYTES = 64L << 20;

  /** Exit status of {@link #main} when the backend failed (sysexits' EX_SOFTWARE): restart the node. */
  static final int EXIT_BACKEND_FAILED = 70;

  /**
   * Exit status when the model cannot be opened (sysexits' EX_DATAERR: a bad bundle or model folder, named on
   * stderr); restarting will not help until the files change.
   */
  static final int EXIT_CANNOT_OPEN = 65;

  /** How long shutdown lets the server end by itself after the last call, before cancelling other streams. */
  private static final long TRAILER_FLUSH_MILLIS = 500;

  private final Server server;
  private final HealthStatusManager health;
  private final SphinxService service;
  private final GenerationBackend backend;
  private final ImageCache images;
  private final Telemetry telemetry;
  private final ExecutorService streamExecutor;
  private final List<AutoCloseable> owned;
  private final int drainSeconds;
  private final AtomicBoolean closed = new AtomicBoolean();
  private final java.util.concurrent.CountDownLatch closeDone = new java.util.concurrent.CountDownLatch(1);
  private volatile Throwable failure;
  private final TlsFiles tls;
  /** The OpenAI-compatible HTTP API; null with {@code --http-port off}. */
  private final OpenAiHttpServer http;

  private SphinxNode(NodeConfig config, Bundle bundle, ModelRuntime runtime, GenerationBackend backend, Telemetry telemetry,
      List<AutoCloseable> owned) {
    // First: a bad file leaves nothing to close.
    Tenants tenants = config.tenants() == null ? null : Tenants.load(config.tenants());
    JwtAuthenticator jwt = config.jwtJwks() == null ? null
        : new JwtAuthenticator(config.jwtJwks(), config.jwtIssuer(), config.jwtAudience(), config.jwtTenantClaim());
    this.tls = config.tls() ? new TlsFiles(config) : null;
    SslContext ssl = tls == null ? null : tls.context();
    this.backend = backend;
    this.owned = owned;
    this.telemetry = telemetry;
    this.drainSeconds = config.drainSeconds();
    this.images = new ImageCache(runtime, config.imageCacheConfig());
    telemetry.observeImages(images);
    if (backend instanceof EngineBackend engine) telemetry.observeEngine(engine.stats(), engine::kvStats);
    this.streamExecutor = Executors.newVirtualThreadPerTaskExecutor();
    this.service = new SphinxService(runtime.spec(), modelName(bundle), bundle.manifest().getTemplate().getName(), runtime.tokenizer(),
        images, backend, config, streamExecutor);
    this.health = new HealthStatusManager();
    // Plaintext listens on loopback only unless all interfaces were asked for explicitly (--plaintext).
    boolean everywhere = ssl != null || config.plaintext() == NodeConfig.Plaintext.ALL_INTERFACES;
    NettyServerBuilder builder = NettyServerBuilder.forAddress(everywhere ? new InetSocketAddress(config.port())
        : new InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), config.port()));
    if (ssl == null && config.authenticates() && everywhere) {
      LOG.warn("bearer credentials are accepted over plaintext on every interface: use TLS unless a proxy or mesh encrypts the traffic");
    }
    if (ssl != null) builder.sslContext(ssl);
    // ServerInterceptors.intercept runs the last interceptor first: tracing (so refusals are logged), auth, limits.
    List<ServerInterceptor> interceptors = new ArrayList<>();
    TenantLimiters limiters = new TenantLimiters();
    if (config.authenticates()) {
      interceptors.add(new LimitInterceptor(limiters));
      interceptors.add(new AuthInterceptor(tenants, jwt, true));
    }
    interceptors.add(new TracingInterceptor(telemetry));
    // Hostile clients: bounded messages and headers, calls per connection, ping floods (GOAWAY), idle connections.
    builder.maxInboundMessageSize(config.maxMessageBytes())
        .maxInboundMetadataSize(config.maxMetadataBytes())
        .maxConcurrentCallsPerConnection(config.maxStreamsPerConnection())
        .permitKeepAliveTime(config.permitKeepAlive().toMillis(), TimeUnit.MILLISECONDS)
        .permitKeepAliveWithoutCalls(false)
        .maxConnectionIdle(config.maxConnectionIdle().toMillis(), TimeUnit.MILLISECONDS)
        .addService(ServerInterceptors.intercept(ParseErrors.asInvalidArgument(service.bindService()), interceptors))
        .addService(health.getHealthService()); // always open: load balancers and orchestrators probe it
    switch (config.reflection()) {
      case OPEN -> builder.addService(ProtoReflectionServiceV1.newInstance());
      case AUTHENTICATED -> builder.addService(!config.authenticates() ? ProtoReflectionServiceV1.newInstance().bindService()
          : ServerInterceptors.intercept(ProtoReflectionServiceV1.newInstance(), new AuthInterceptor(tenants, jwt, false)));
      case OFF -> { }
    }
    if (config.maxConnectionAgeSeconds() > 0) {
      // Old connections end gracefully (GOAWAY, then the drain's grace for streams in flight), so clients
      // re-resolve a headless Service's DNS and reach nodes that joined since they connected.
      builder.maxConnectionAge(config.maxConnectionAgeSeconds(), TimeUnit.SECONDS)
          .maxConnectionAgeGrace(Math.max(1, drainSeconds), TimeUnit.SECONDS);
    }
    Server started = builder.build();
    try {
      started.start();
    } catch (IOException e) {
      images.close();
      streamExecutor.shutdownNow();
      if (tls != null) tls.close();
      telemetry.close();
      throw new UncheckedIOException("cannot listen on port " + config.port() + ": " + e.getMessage(), e);
    }
    this.server = started;
    if (config.httpPort() >= 0) {
      try {
        this.http = new OpenAiHttpServer(config, tls == null ? null : tls.httpContext(), runtime.spec(), modelName(bundle),
            runtime.tokenizer(), service.calls(), backend, config.authenticates() ? new Authenticator(tenants, jwt) : null,
            limiters, telemetry, service::isDraining, service.inFlight(), streamExecutor);
      } catch (RuntimeException e) {
        started.shutdownNow();
        images.close();
        streamExecutor.shutdownNow();
        if (tls != null) tls.close();
        telemetry.close();
        throw e;
      }
    } else {
      this.http = null;
    }
    health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.SERVING);
    health.setStatus(SphinxGrpc.SERVICE_NAME, ServingStatus.SERVING);
    backend.failure().thenAccept(this::backendFailed);
  }

  /** The backend cannot serve any more: stop looking healthy at once, then drain and close on a thread of its own. */
  private void backendFailed(Throwable cause) {
    failure = cause;
    LOG.atError().setCause(cause).log("the engine failed; the node reports NOT_SERVING, drains and stops");
    health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.NOT_SERVING);
    health.setStatus(SphinxGrpc.SERVICE_NAME, ServingStatus.NOT_SERVING);
    Thread.ofPlatform().name("sphinx-failed-close").start(this::close);
  }

  /** Why the node stopped serving by itself, if its backend failed. */
  public java.util.Optional<Throwable> failure() {
    return java.util.Optional.ofNullable(failure);
  }

  /**
   * Opens the model {@code config} names and serves it with the backend {@code backends} creates. The node
   * owns everything it opened and closes it in {@link #close}.
   */
  public static SphinxNode open(NodeConfig config, BackendFactory backends) {
    List<AutoCloseable> owned = new ArrayList<>();
    Telemetry telemetry = null;
    try {
      telemetry = Telemetry.open(config.metricsAddress(), config.metricsPort(), Map.of());
      Path dir = EmbeddedBundles.resolve(config);
      Bundle bundle = Bundle.open(dir);
      KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), config.kvBlockSize(), kvPoolBlocks(config, bundle)));
      owned.addFirst(kv);
      OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, config.runtimeOptions(), kv);
      owned.addFirst(runtime); // closed before the storage it reads
      // Opening parsed graphs in Java (an int4 bundle's wide-batch variant: the whole decoder graph, rewritten) and
      // hashed the bundle: a full collection now lets G1 return that garbage's heap to the OS instead of keeping it
      // resident until the heap next shrinks (bench int4 bundle: 1.0 → 0.53 GB resident; docs/PERFORMANCE.md, "Memory").
      System.gc();
      GenerationBackend backend = backends.create(runtime, kv, config);
      return new SphinxNode(config, bundle, runtime, backend, telemetry, owned);
    } catch (RuntimeException e) {
      if (telemetry != null) owned.add(telemetry);
      closeAll(owned);
      throw e;
    }
  }

  /**
   * The KV pool's blocks for {@code bundle}'s model ({@link KvPoolSizing}: {@code --kv-blocks}, else the
   * {@code --kv-cache-memory} budget), logged with where they came from; a pool that cannot hold one
   * maximum-length request throws {@link IllegalArgumentException} naming the option.
   */
  private static int kvPoolBlocks(NodeConfig config, Bundle bundle) {
    HostMemory host = HostMemory.probe();
    ModelMemory model = OnnxModelRuntime.modelMemory(bundle, config.runtimeOptions());
    KvPoolSizing pool = kvPoolSizing(config, bundle, host, model);
    LOG.atInfo().addKeyValue("kv_blocks", pool.numBlocks()).addKeyValue("kv_block_size", config.kvBlockSize())
        .addKeyValue("kv_bytes", pool.poolBytes()).addKeyValue("kv_sized_by", pool.option())
        .addKeyValue("kv_budget_bytes", pool.budgetBytes()).addKeyValue("kv_budget_source", pool.source())
        .addKeyValue("kv_cap", pool.cap())
        .addKeyValue("memory_total_bytes", host.totalBytes()).addKeyValue("memory_total_source", host.totalSource())
        .addKeyValue("heap_max_bytes", host.heapMaxBytes()).addKeyValue("model_bytes", model.totalBytes())
        .addKeyValue("decoder_bytes", model.decoderBytes()).addKeyValue("wide_decoder_bytes", model.wideDecoderBytes())
        .addKeyValue("vision_bytes", model.visionBytes()).addKeyValue("tokenizer_bytes", model.tokenizerBytes())
        .log("KV pool: {} blocks of {} tokens, {}, from {}{}", pool.numBlocks(), config.kvBlockSize(),
            KvPoolSizing.bytes(pool.poolBytes()), pool.source(), pool.cap().isEmpty() ? "" : "; " + pool.cap());
    return pool.numBlocks();
  }

  /** The pool {@link KvPoolSizing} chooses on {@code host} for {@code bundle}, whose sessions hold {@code model}. */
  static KvPoolSizing kvPoolSizing(NodeConfig config, Bundle bundle, HostMemory host, ModelMemory model) {
    return KvPoolSizing.choose(config.kvBlocks(), config.kvCacheMemory(), host, model.totalBytes(),
        OnnxModelRuntime.kvLayoutFor(bundle.spec(), config.kvBlockSize(), 1), bundle.spec().maxContextTokens(),
        config.maxRunningRequests());
  }

  /**
   * Serves {@code runtime} (opened over {@code bundle} by the caller, who keeps owning it) with
   * {@code backend}, which the node closes. For tests and embedding.
   */
  public static SphinxNode start(NodeConfig config, Bundle bundle, ModelRuntime runtime, GenerationBackend backend) {
    return start(config, bundle, runtime, backend, Telemetry.disabled());
  }

  /** As {@link #start(NodeConfig, Bundle, ModelRuntime, GenerationBackend)}, recording into {@code telemetry}, which the node closes. */
  public static SphinxNode start(NodeConfig config, Bundle bundle, ModelRuntime runtime, GenerationBackend backend,
      Telemetry telemetry) {
    return new SphinxNode(config, bundle, runtime, backend, telemetry, new ArrayList<>());
  }

  /** The port the server listens on (the real one when configured with 0). */
  public int port() {
    return server.getPort();
  }

  /** The image cache, for metrics. */
  public ImageCache images() {
    return images;
  }

  /**
   * Whether the engine's model step and the vision encoder's call have returned and none will start: after
   * {@link #close}, the runtime and the KV storage may be freed only then. A caller that owns them
   * ({@link #start}) checks it; {@link #open}'s node checks it itself.
   */
  public boolean modelRunsEnded() {
    return backend.isStopped() && images.isStopped();
  }

  /** Whether the server has stopped: every call ended and the listener closed. */
  public boolean isTerminated() {
    return server.isTerminated();
  }

  /** Blocks until the server terminates. */
  public void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  /** The port of the OpenAI-compatible HTTP API, or -1 when it is off. */
  public int httpPort() {
    return http == null ? -1 : http.port();
  }

  /** The name clients use for the model: the manifest's, else its architecture (bundles built before names). */
  private static String modelName(Bundle bundle) {
    String name = bundle.manifest().getModelName();
    return name.isEmpty() ? bundle.manifest().getArchitecture() : name;
  }

  /** Drains and stops the node (see the class comment for the order); idempotent, and returns only once it is closed. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      awaitClosed();
      return;
    }
    try {
      drainAndClose();
    } finally {
      closeDone.countDown();
    }
  }

  private void awaitClosed() {
    try {
      closeDone.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void drainAndClose() {
    health.enterTerminalState();
    service.startDraining();
    server.shutdown();
    try {
      // Wait for this service's calls only: other long-lived calls (Health/Watch) never end by themselves.
      if (!service.awaitCallsEnded(drainSeconds, TimeUnit.SECONDS)) {
        LOG.warn("in-flight calls still running after {} s; cancelling them", drainSeconds);
      }
      // A moment for the last trailers to flush, then cancel what is left: health watches, reflection streams,
      // calls past the drain period.
      if (!server.awaitTermination(TRAILER_FLUSH_MILLIS, TimeUnit.MILLISECONDS)) {
        server.shutdownNow();
        server.awaitTermination(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    }
    List<AutoCloseable> all = new ArrayList<>();
    if (http != null) all.add(http); // its streams ended with the drain above (they count as in-flight calls)
    all.add(backend);
    all.add(images);
    all.add(streamExecutor::shutdown);
    if (tls != null) all.add(tls);
    all.add(telemetry); // after the calls ended: their last spans are flushed
    closeAll(all);
    if (!modelRunsEnded()) {
      // Freeing the sessions or the KV pools under a live run would let native code write into freed memory: leave
      // them to the process's exit (SIGKILL or the JVM's end), which is near, rather than corrupt or crash it.
      LOG.error("a model run is still in flight after close waited for it (engine stopped: {}, vision encoder stopped: {}); "
          + "leaving the ONNX Runtime sessions and the KV pool allocated", backend.isStopped(), images.isStopped());
      return;
    }
    closeAll(owned);
  }

  private static void closeAll(List<AutoCloseable> resources) {
    for (AutoCloseable r : resources) {
      try {
        r.close();
      } catch (Exception e) {
        LOG.warn("closing {} failed", r, e);
      }
    }
  }

  /** Runs a node until SIGTERM / SIGINT, then drains. {@code --help} lists the options. */
  public static void main(String[] args) throws InterruptedException {
    // gRPC and Netty log through java.util.logging: route it to SLF4J (JSON lines, logback.xml).
    SLF4JBridgeHandler.removeHandlersForRootLogger();
    SLF4JBridgeHandler.install();
    if (List.of(args).contains("--help")) {
      System.out.print(NodeConfig.usage());
      return;
    }
    NodeConfig config;
    try {
      config = NodeConfig.parse(args, Map.copyOf(System.getenv()));
    } catch (IllegalArgumentException e) {
      System.err.println("error: " + e.getMessage());
      System.exit(2);
      return;
    }
    // Opening runs on a thread with a large stack: with the launcher's default 1 MiB thread stack, loading
    // the bundle crashes the JVM (SIGSEGV, no hs_err) in native code; the test JVM never hits it because
    // bundles open on other threads there. Observed on Temurin 25 with the TEST bundle.
    SphinxNode[] opened = new SphinxNode[1];
    Throwable[] failed = new Throwable[1];
    Thread opener = new Thread(null, () -> {
      try {
        opened[0] = open(config, EngineBackend::new);
      } catch (Throwable e) { // an Error too: main must exit, not wait on a node that never opened
        failed[0] = e;
      }
    }, "sphinx-open", OPEN_STACK_BYTES);
    opener.start();
    opener.join();
    if (failed[0] instanceof IllegalArgumentException e) {
      System.err.println("error: " + e.getMessage());
      System.exit(2);
    }
    if (failed[0] instanceof BundleException e) { // a bad bundle or model folder: the message names the file
      System.err.println("error: " + e.getMessage());
      System.exit(EXIT_CANNOT_OPEN);
    }
    if (failed[0] != null) {
      LOG.atError().setCause(failed[0]).log("the node could not open its model");
      System.exit(EXIT_CANNOT_OPEN);
    }
    SphinxNode node = opened[0];
    Runtime.getRuntime().addShutdownHook(new Thread(node::close, "sphinx-shutdown"));
    LOG.atInfo().addKeyValue("port", node.port()).addKeyValue("http_port", node.httpPort()).addKeyValue("metrics_port", config.metricsPort()).addKeyValue("metrics_address", config.metricsAddress().getHostAddress())
        .log("sphinx-serve listening");
    node.awaitTermination();
    if (node.failure().isPresent()) {
      node.close(); // waits for the drain the failure started
      System.exit(EXIT_BACKEND_FAILED);
    }
  }
}
