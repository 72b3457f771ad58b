package sphinxserve.client;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.ModelInfo;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.PutImageResponse;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.retry.Retry;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptors;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.Flow;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A client for one or more sphinx-serve nodes.
 *
 * <pre>{@code
 * try (SphinxClient client = SphinxClient.builder().target("localhost:50051").build()) {
 *   Answer answer = client.ask(Image.read(Path.of("photo.jpg")), "Detect all people");
 *   for (Region r : answer.outputs().regions()) { ... }
 * }
 * }</pre>
 *
 * <p>How: one channel and one Resilience4j circuit breaker per target; calls go round robin over the targets whose
 * breaker permits them ({@link Endpoints}). A generation ({@link GenerationCall}) is retried with exponential
 * backoff and jitter on {@code UNAVAILABLE} and {@code RESOURCE_EXHAUSTED} only until its first token arrives, so a
 * partly streamed answer is never duplicated; unary calls ({@code PutImage}, {@code GetModelInfo}) are idempotent and
 * retried on the same codes. Every call carrying an image sends the {@code x-image-digest} header. One deadline
 * covers a call and all its retries. Every call carries the caller's OpenTelemetry trace context as W3C
 * {@code traceparent} (the context current when the call is made, kept for its retries), so the node's spans join
 * the caller's trace. Thread-safe; close it to release the channels it owns.
 */
public final class SphinxClient implements AutoCloseable {
  /** Default deadline of a call, retries included. */
  public static final Duration DEFAULT_DEADLINE = Duration.ofMinutes(2);

  private final Endpoints endpoints;
  private final List<ManagedChannel> ownedChannels;
  private final Retry retry;
  private final Duration defaultDeadline;
  private final SamplingParams defaultSampling;
  private final ScheduledExecutorService scheduler;

  private SphinxClient(Builder b, List<Endpoint> endpoints, List<ManagedChannel> ownedChannels) {
    this.endpoints = new Endpoints(endpoints);
    this.ownedChannels = List.copyOf(ownedChannels);
    this.retry = Resilience.retry("sphinx-client", b.retry);
    this.defaultDeadline = b.deadline;
    this.defaultSampling = b.sampling;
    this.scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "sphinx-client-retry");
      t.setDaemon(true);
      return t;
    });
  }

  /** A builder; at least one target or channel is needed. */
  public static Builder builder() {
    return new Builder();
  }

  /** The targets, in round-robin order. */
  public List<String> targets() {
    return endpoints.all().stream().map(Endpoint::target).toList();
  }

  /** The state of a target's circuit breaker. */
  public CircuitBreaker.State circuitState(String target) {
    return endpoints.all().stream().filter(e -> e.target().equals(target)).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("unknown target " + target)).breaker().getState();
  }

  // ---- Generation ------------------------------------------------------------------------------------------

  /**
   * Streams a generation. Cold: each subscriber starts its own call. The subscriber's demand is the call's flow
   * control. Signals: {@code onNext} per message, then {@code onComplete} or {@code onError} (a
   * {@link StatusRuntimeException}).
   */
  public Flow.Publisher<GenerateResponse> generate(GenerateRequest request) {
    return generate(PreparedRequest.of(request));
  }

  /** Streams a generation to callbacks; the handle cancels it or waits for the whole answer. */
  public GenerationHandle generate(GenerateRequest request, GenerationListener listener) {
    return generate(PreparedRequest.of(request), listener);
  }

  /** Asks one question about an image and waits for the whole answer. */
  public Answer ask(Image image, String question) {
    GenerateRequest request = request(List.of(userTurn(imageBytes(image), question)));
    return await(generate(new PreparedRequest(request, Optional.empty(), Optional.of(image.digest())),
        new GenerationListener() { }));
  }

  /** Sends a request and waits for the whole answer. */
  public Answer ask(GenerateRequest request) {
    return await(generate(request, new GenerationListener() { }));
  }

  /** A multi-turn chat about one image that sends the image once, then only its digest. */
  public Conversation conversation(Image image) {
    return new Conversation(this, image);
  }

  Flow.Publisher<GenerateResponse> generate(PreparedRequest prepared) {
    Objects.requireNonNull(prepared, "request");
    return subscriber -> new GenerationCall(endpoints, scheduler, retry, Deadline.after(
        defaultDeadline.toNanos(), TimeUnit.NANOSECONDS), prepared, Objects.requireNonNull(subscriber)).start();
  }

  GenerationHandle generate(PreparedRequest prepared, GenerationListener listener) {
    AnswerCollector collector = new AnswerCollector(Objects.requireNonNull(listener, "listener"));
    generate(prepared).subscribe(collector);
    return collector;
  }

  /** A request with the client's default sampling. */
  GenerateRequest request(List<Message> messages) {
    return GenerateRequest.newBuilder().addAllMessages(messages).setSampling(defaultSampling).build();
  }

  static Content imageBytes(Image image) {
    return Content.newBuilder().setImage(image.bytes()).build();
  }

  static Content imageDigest(Image image) {
    return Content.newBuilder().setImageDigest(image.digest()).build();
  }

  static Message userTurn(Content image, String question) {
    Message.Builder m = Message.newBuilder().setRole(Role.USER);
    if (image != null) {
      m.addContent(image);
    }
    return m.addContent(Content.newBuilder().setText(question)).build();
  }

  /** Waits for a handle's answer, cancelling the generation if the waiting thread is interrupted. */
  static Answer await(GenerationHandle handle) {
    try {
      return handle.answer().get();
    } catch (InterruptedException e) {
      handle.cancel();
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted while waiting for the answer").withCause(e)
          .asRuntimeException();
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException(e.getCause());
    } catch (CancellationException e) {
      throw Status.CANCELLED.withDescription("generation cancelled").withCause(e).asRuntimeException();
    }
  }

  // ---- Unary calls -----------------------------------------------------------------------------------------

  /** Sends an image to be encoded and cached, so later requests can name it by digest. */
  public PutImageResponse putImage(Image image) {
    PutImageRequest request = PutImageRequest.newBuilder().setImage(image.bytes()).build();
    return unary(Optional.of(image.digest()), stub -> stub.putImage(request));
  }

  /** Describes the served model and the node's limits (of the next target in round robin). */
  public ModelInfo modelInfo() {
    return unary(Optional.empty(), stub -> stub.getModelInfo(GetModelInfoRequest.getDefaultInstance()));
  }

  /**
   * Checks every target's {@code grpc.health.v1.Health}, bypassing retries and breakers.
   *
   * @param service the service to ask about; {@code ""} for the node as a whole
   */
  public List<TargetHealth> health(String service) {
    List<TargetHealth> report = new ArrayList<>();
    for (Endpoint e : endpoints.all()) {
      try {
        ServingStatus status = HealthGrpc.newBlockingStub(e.channel())
            .withDeadlineAfter(Math.min(defaultDeadline.toMillis(), 10_000), TimeUnit.MILLISECONDS)
            .check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus();
        report.add(new TargetHealth(e.target(), status, ""));
      } catch (StatusRuntimeException ex) {
        report.add(new TargetHealth(e.target(), ServingStatus.UNKNOWN, describe(ex.getStatus())));
      }
    }
    return report;
  }

  private static String describe(Status status) {
    return status.getCode() + (status.getDescription() == null ? "" : ": " + status.getDescription());
  }

  /** A blocking unary call with breaker per attempt and retries on the retryable codes. */
  private <T> T unary(Optional<String> digest, Function<SphinxGrpc.SphinxBlockingStub, T> call) {
    Deadline deadline = Deadline.after(defaultDeadline.toNanos(), TimeUnit.NANOSECONDS);
    Retry.Context<T> context = retry.context();
    while (true) {
      Endpoint e = endpoints.acquire();
      long start = System.nanoTime();
      try {
        T result = call.apply(SphinxGrpc.newBlockingStub(e.channel()).withDeadline(deadline)
            .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(ImageDigests.headers(digest))));
        e.breaker().onSuccess(System.nanoTime() - start, TimeUnit.NANOSECONDS);
        context.onComplete();
        return result;
      } catch (StatusRuntimeException ex) {
        e.breaker().onError(System.nanoTime() - start, TimeUnit.NANOSECONDS, ex);
        context.onRuntimeError(ex); // rethrows when not retryable or out of attempts, else waits the backoff
        if (deadline.isExpired()) {
          throw ex;
        }
      } catch (RuntimeException ex) {
        e.breaker().releasePermission();
        throw ex;
      }
    }
  }

  /** Shuts down the channels this client owns (not those passed to {@link Builder#channel}), waiting up to 5 s. */
  @Override
  public void close() {
    scheduler.shutdownNow();
    for (ManagedChannel c : ownedChannels) {
      c.shutdown();
    }
    try {
      for (ManagedChannel c : ownedChannels) {
        if (!c.awaitTermination(5, TimeUnit.SECONDS)) {
          c.shutdownNow();
        }
      }
    } catch (InterruptedException e) {
      ownedChannels.forEach(ManagedChannel::shutdownNow);
      Thread.currentThread().interrupt();
    }
  }

  /** Configures a {@link SphinxClient}. */
  public static final class Builder {
    private final List<String> targets = new ArrayList<>();
    private final Map<String, Channel> channels = new LinkedHashMap<>();
    private boolean tls;
    private boolean imageAffinity;
    private Path trustCertificates;
    private Path clientCertificate;
    private Path clientKey;
    private String bearerToken;
    private Duration deadline = DEFAULT_DEADLINE;
    private RetrySettings retry = RetrySettings.defaults();
    private CircuitBreakerSettings breaker = CircuitBreakerSettings.defaults();
    private SamplingParams sampling = SamplingParams.getDefaultInstance();

    private Builder() {}

    /** Adds a node, {@code host:port} or any gRPC target URI; the client owns its channel. */
    public Builder target(String target) {
      targets.add(Objects.requireNonNull(target, "target"));
      return this;
    }

    /** Adds several nodes; calls are balanced round robin over them. */
    public Builder targets(List<String> targets) {
      targets.forEach(this::target);
      return this;
    }

    /** Adds a channel the caller owns (and shuts down), under a name for breakers and reports. */
    public Builder channel(String name, Channel channel) {
      channels.put(Objects.requireNonNull(name, "name"), Objects.requireNonNull(channel, "channel"));
      return this;
    }

    /**
     * Routes by image instead of round robin: one channel over all the targets (several {@code host:port}, or one
     * {@code dns:///} name such as a Kubernetes headless Service) with gRPC's ring-hash policy on the
     * {@code x-image-digest} header, so every request about one image reaches the node that holds it. Sets grpc-java's
     * feature flag {@code GRPC_EXPERIMENTAL_RING_HASH_SET_REQUEST_HASH_KEY} for the JVM (see {@link ImageAffinity}).
     * The per-target circuit breakers are off in this mode: the ring itself skips nodes that fail to connect.
     * Channels passed to {@link #channel} are not affected.
     */
    public Builder imageAffinity(boolean imageAffinity) {
      this.imageAffinity = imageAffinity;
      return this;
    }

    /** Uses TLS with the JDK's trusted certificates for the targets (not for channels passed in). */
    public Builder tls(boolean tls) {
      this.tls = tls;
      return this;
    }

    /** Uses TLS trusting the PEM certificates in a file (a private CA). */
    public Builder trustCertificates(Path pem) {
      this.tls = true;
      this.trustCertificates = Objects.requireNonNull(pem, "pem");
      return this;
    }

    /**
     * Uses TLS presenting a client certificate (mutual TLS, a node started with {@code --tls-client-ca}): a PEM
     * certificate chain and its PKCS#8 private key.
     */
    public Builder clientCertificate(Path certificateChain, Path privateKey) {
      this.tls = true;
      this.clientCertificate = Objects.requireNonNull(certificateChain, "certificateChain");
      this.clientKey = Objects.requireNonNull(privateKey, "privateKey");
      return this;
    }

    /**
     * Sends {@code authorization: Bearer <token>} on every call (an API key of a node's tenants file, or a JWT),
     * on the targets and on channels passed in. Send it over TLS only: a bearer token on plaintext is readable by
     * anyone on the path.
     */
    public Builder bearerToken(String token) {
      Objects.requireNonNull(token, "token");
      if (token.isBlank() || token.chars().anyMatch(c -> c < 0x21 || c > 0x7e)) {
        throw new IllegalArgumentException("token must be printable ASCII without spaces");
      }
      this.bearerToken = token;
      return this;
    }

    /** The deadline of each call, retries included; default {@link #DEFAULT_DEADLINE}. */
    public Builder defaultDeadline(Duration deadline) {
      if (deadline.isNegative() || deadline.isZero()) {
        throw new IllegalArgumentException("deadline must be positive");
      }
      this.deadline = deadline;
      return this;
    }

    /** Retry policy; default {@link RetrySettings#defaults()}. */
    public Builder retry(RetrySettings retry) {
      this.retry = Objects.requireNonNull(retry, "retry");
      return this;
    }

    /** Circuit breaker policy, one breaker per target; default {@link CircuitBreakerSettings#defaults()}. */
    public Builder circuitBreaker(CircuitBreakerSettings breaker) {
      this.breaker = Objects.requireNonNull(breaker, "breaker");
      return this;
    }

    /** Sampling used by {@link SphinxClient#ask} and {@link Conversation}; default: the node's defaults. */
    public Builder defaultSampling(SamplingParams sampling) {
      this.sampling = Objects.requireNonNull(sampling, "sampling");
      return this;
    }

    /**
     * Builds the client, creating a channel per target.
     *
     * @throws IllegalStateException without targets or channels, or when image affinity cannot be turned on
     * @throws IllegalArgumentException when image affinity is asked over several targets that are not host:port
     * @throws UncheckedIOException  if the trusted certificates cannot be read
     */
    public SphinxClient build() {
      if (targets.isEmpty() && channels.isEmpty()) {
        throw new IllegalStateException("no target: call target(...) or channel(...)");
      }
      ChannelCredentials credentials = credentials();
      List<Endpoint> endpoints = new ArrayList<>();
      List<ManagedChannel> owned = new ArrayList<>();
      if (imageAffinity && !targets.isEmpty()) {
        ManagedChannel channel = ImageAffinity.channel(targets, credentials);
        owned.add(channel);
        String name = String.join(",", targets);
        endpoints.add(new Endpoint(name, intercepted(channel),
            Resilience.circuitBreaker(name, CircuitBreakerSettings.disabled())));
      } else {
        for (String target : targets) {
          ManagedChannel channel = Grpc.newChannelBuilder(target, credentials).userAgent("sphinx-client").build();
          owned.add(channel);
          endpoints.add(new Endpoint(target, intercepted(channel),
              Resilience.circuitBreaker(target, breaker)));
        }
      }
      channels.forEach((name, channel) -> endpoints.add(new Endpoint(name, intercepted(channel), Resilience.circuitBreaker(name, breaker))));
      return new SphinxClient(this, endpoints, owned);
    }

    private Channel intercepted(Channel channel) {
      Channel traced = ClientInterceptors.intercept(channel, new TraceContextInterceptor());
      if (bearerToken == null) return traced;
      io.grpc.Metadata headers = new io.grpc.Metadata();
      headers.put(io.grpc.Metadata.Key.of("authorization", io.grpc.Metadata.ASCII_STRING_MARSHALLER), "Bearer " + bearerToken);
      return ClientInterceptors.intercept(traced, io.grpc.stub.MetadataUtils.newAttachHeadersInterceptor(headers));
    }

    private ChannelCredentials credentials() {
      if (!tls) {
        return InsecureChannelCredentials.create();
      }
      if (trustCertificates == null && clientCertificate == null) {
        return TlsChannelCredentials.create();
      }
      TlsChannelCredentials.Builder b = TlsChannelCredentials.newBuilder();
      try {
        if (trustCertificates != null) b.trustManager(trustCertificates.toFile());
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read trusted certificates " + trustCertificates, e);
      }
      try {
        if (clientCertificate != null) b.keyManager(clientCertificate.toFile(), clientKey.toFile());
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read client certificate " + clientCertificate + " / key " + clientKey, e);
      }
      return b.build();
    }
  }
}
