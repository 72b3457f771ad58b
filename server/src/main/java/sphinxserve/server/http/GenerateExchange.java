package sphinxserve.server.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.grpc.Status;
import io.netty.channel.Channel;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaders;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TextTokenizer;
import sphinxserve.server.auth.TenantLimiter;
import sphinxserve.server.auth.TenantLimiters;
import sphinxserve.server.generate.GenerateCalls;
import sphinxserve.server.generate.GenerationBackend;
import sphinxserve.server.generate.InFlightCalls;
import sphinxserve.server.generate.RequestException;
import sphinxserve.server.telemetry.RequestTelemetry;
import sphinxserve.server.telemetry.Telemetry;

/**
 * One {@code /v1/chat/completions} or {@code /v1/completions} request: admission on the event loop (draining, tenant
 * limits), then on the preparing executor — never on the two event loops that carry every connection's bytes, nor on
 * the worker executor that formats every stream's tokens — parsing
 * the body (up to the body limit, base64 images included) and {@link GenerateCalls#start} of each choice (validation,
 * template rendering, tokenising, image encoding); the output goes through one {@link HttpSink}. The same request
 * path, credentials, limits, draining and request log line as gRPC (protocol {@code http}).
 */
final class GenerateExchange implements Exchange {

  private static final Logger LOG = LoggerFactory.getLogger(GenerateExchange.class);

  /**
   * What every generation exchange of the node shares: {@code preparer} runs parsing and request preparation
   * (CPU-bound, bounded: {@link OpenAiHttpServer#PREPARE_THREADS}), {@code executor} the sinks' formatting and writes.
   */
  record Services(ModelSpec spec, OpenAiRequests.Limits limits, String modelName, TextTokenizer tokenizer, GenerateCalls calls, GenerationBackend backend, TenantLimiters limiters,
      Telemetry telemetry, BooleanSupplier draining, InFlightCalls inFlight, Executor preparer, Executor executor, Duration requestTimeout,
      int maxUnsentTokens) {}

  /** Reads trace context from HTTP headers. */
  private static final io.opentelemetry.context.propagation.TextMapGetter<HttpHeaders> HEADERS =
      new io.opentelemetry.context.propagation.TextMapGetter<>() {
        @Override
        public Iterable<String> keys(HttpHeaders carrier) {
          return carrier.names();
        }

        @Override
        public String get(HttpHeaders carrier, String key) {
          return carrier == null ? null : carrier.get(key);
        }
      };

  private final Services services;
  private final Channel channel;
  private final Admitted head;
  private final FullHttpRequest request;
  private final long arrivalNanos;
  private final long numBodyBytes;
  private final Runnable onEnd;
  private final AtomicBoolean released = new AtomicBoolean();
  /** Set when the body went to {@link #prepare}, which then releases it (the connection may close while it parses). */
  private volatile boolean bodyHandedOff;
  private HttpSink sink;
  private RequestTelemetry telemetry;

  /**
   * @param request the whole request; released once parsed (or when the connection closes first)
   * @param onEnd runs once when the response has ended
   */
  GenerateExchange(Services services, Channel channel, Admitted head, FullHttpRequest request, Runnable onEnd) {
    this.services = services;
    this.channel = channel;
    this.head = head;
    this.request = request;
    this.arrivalNanos = System.nanoTime();
    this.numBodyBytes = request.content().readableBytes();
    this.onEnd = onEnd;
  }

  @Override
  public void start() {
    String method = "POST " + (head.route() == Route.CHAT ? "/v1/chat/completions" : "/v1/completions");
    // A caller's W3C trace context (traceparent) continues here, as over gRPC.
    io.opentelemetry.context.Context parent = services.telemetry().propagator().extract(io.opentelemetry.context.Context.root(),
        request.headers(), HEADERS);
    telemetry = new RequestTelemetry(services.telemetry(),
        RequestTelemetry.serverSpan(services.telemetry(), method, parent), method, arrivalNanos, "http");
    telemetry.requestId(head.requestId());
    if (head.tenant() != sphinxserve.server.auth.Tenant.ANONYMOUS) telemetry.tenant(head.tenant().name());
    // Counted before the draining check, as gRPC's Generate: a drain that starts meanwhile still waits for this call.
    services.inFlight().enter();
    TenantLimiter limiter = services.limiters().of(head.tenant());
    TenantLimiter.Refusal refusal = null;
    if (limiter != null) {
      refusal = limiter.admitRequest();
      if (refusal == null) refusal = limiter.admitStream();
    }
    boolean holdsStream = limiter != null && refusal == null;
    sink = new HttpSink(channel, services.executor(), services.backend(), head, telemetry, holdsStream ? limiter : null,
        services.maxUnsentTokens(), services.requestTimeout(), () -> {
          if (holdsStream) limiter.streamEnded();
          services.inFlight().exit();
          if (!bodyHandedOff) release();
          onEnd.run();
        });
    if (services.draining().getAsBoolean()) {
      sink.fail(Status.UNAVAILABLE.withDescription("node is draining; retry on another node"));
    } else if (refusal != null) {
      sink.fail(Status.RESOURCE_EXHAUSTED.withDescription(refusal.description()), Long.toString(Math.max(1, (refusal.retryAfterMillis() + 999) / 1000)));
    } else {
      bodyHandedOff = true;
      try {
        services.preparer().execute(this::prepare);
      } catch (RejectedExecutionException e) { // the node is closing
        release();
        sink.fail(Status.UNAVAILABLE.withDescription("node is shutting down; retry on another node"));
      }
    }
  }

  /** On the preparing executor: parse, then start every choice. */
  private void prepare() {
    if (sink.hasEnded()) { // the client left while the request waited for a worker
      release();
      return;
    }
    OpenAiRequests.Parsed parsed;
    try {
      JsonNode body = BoundedJsonBody.read(OpenAiResponses.JSON, request.content(), services.limits().maxPromptChars(),
          services.limits().maxImageBytes());
      if (body == null || !body.isObject()) throw RequestException.invalid("body", "must be a JSON object");
      String model = body.path("model").asText("");
      if (!model.isEmpty() && !model.equals(services.modelName())) {
        throw RequestException.notFound("model", "the model '" + model + "' is not served here (this node serves '" + services.modelName() + "')");
      }
      parsed = head.route() == Route.CHAT ? OpenAiRequests.chat(body, head.requestId(), services.limits())
          : OpenAiRequests.completion(body, head.requestId(), services.limits(), services.tokenizer(), services.spec().specialTokens());
    } catch (JsonProcessingException e) {
      sink.fail(Status.INVALID_ARGUMENT.withDescription("body: not valid JSON: " + e.getOriginalMessage()));
      return;
    } catch (IOException e) {
      sink.fail(Status.INVALID_ARGUMENT.withDescription("body: cannot be read: " + e.getMessage()));
      return;
    } catch (RequestException e) {
      sink.fail(e.status());
      return;
    } catch (RuntimeException e) {
      sink.fail(GenerateCalls.internal(e));
      return;
    } catch (Throwable e) { // an Error (stack overflow, out of memory on a huge body): the response must still end
      LOG.error("HTTP request {} failed while being read", head.requestId(), e);
      sink.fail(Status.INTERNAL.withDescription("the request failed inside the node: " + e).withCause(e));
      return;
    } finally {
      release();
    }
    OpenAiResponses.Kind kind = head.route() == Route.CHAT ? OpenAiResponses.Kind.CHAT : OpenAiResponses.Kind.COMPLETION;
    sink.begin(new HttpSink.Plan(new ChoiceFormat(new OpenAiResponses(kind, head.requestId(), services.modelName(), services.tokenizer(),
        parsed)), parsed.stream(), parsed.includeUsage(), parsed.choices().size()));
    long deadline = services.requestTimeout() == null ? Long.MAX_VALUE : arrivalNanos + services.requestTimeout().toNanos();
    // One engine request per choice; a prompt's choices share its KV blocks through the prefix cache (startChoices).
    for (List<OpenAiRequests.ChoiceRequest> prompt : parsed.byPrompt()) {
      if (sink.hasEnded()) break; // an earlier prompt failed the request, or the client left
      try {
        services.calls().startChoices(prompt.stream().map(OpenAiRequests.ChoiceRequest::request).toList(), head.tenant(), arrivalNanos,
            deadline, telemetry, prompt.stream().map(c -> sink.choice(c.index())).toList());
      } catch (RuntimeException e) {
        sink.fail(GenerateCalls.internal(e));
      } catch (Throwable e) { // an Error: this request fails, its response still ends
        LOG.error("HTTP request {} failed while starting", head.requestId(), e);
        sink.fail(Status.INTERNAL.withDescription("the request failed inside the node: " + e).withCause(e));
      }
    }
  }

  @Override
  public long heldBytes() {
    return numBodyBytes;
  }

  @Override
  public void writabilityChanged() {
    if (sink != null) sink.writable();
  }

  @Override
  public void connectionClosed() {
    if (sink != null) {
      sink.connectionClosed();
    } else {
      release(); // never started: the body is all it holds
    }
  }

  private void release() {
    if (released.compareAndSet(false, true)) request.release();
  }
}
