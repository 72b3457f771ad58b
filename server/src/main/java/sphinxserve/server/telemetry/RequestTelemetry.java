package sphinxserve.server.telemetry;

import io.grpc.Status;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.context.Context;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;
import sphinxserve.api.FinishReason;
import sphinxserve.api.Usage;

/**
 * One call's telemetry: its server span and child spans, its latency histograms, and its log line.
 *
 * <p>The span tree of a Generate call ({@code grpc.TracingInterceptor} opens the server span, the W3C
 * {@code traceparent} it carries makes it a child of the client's span):
 * <pre>
 *   sphinx.v1.Sphinx/Generate (SERVER)   arrival ─────────────────────────────────────────── call closed
 *     sphinx.image                        image future: hit or miss (attribute sphinx.image_cache.result)
 *     sphinx.queue                                 submit ── first admission
 *     sphinx.prefill                                        admission ── first token
 *     sphinx.decode                                                     first token ── finish
 * </pre>
 * Threads: the gRPC handler and the image pipeline call {@link #imageStarted}, {@link #submitted}; the engine
 * thread calls {@link #scheduled}, {@link #token}, {@link #preempted}, {@link #finished} (through the
 * backend's sink hooks, one thread at a time, after {@code submitted} by the engine's queue); the call's close
 * runs {@link #closed} once. The engine-thread fields are confined to it; what {@link #closed} reads is
 * volatile. Per token the cost is one histogram record; nothing allocates.
 *
 * <p>The log line, one per call at its close, carries {@code request_id} and {@code trace_id} in the MDC
 * and the tenant, status (the outcome) and counts as key-value pairs; never prompt text, image bytes or credentials.
 */
public final class RequestTelemetry {

  /** Where the interceptor puts a call's telemetry for the handler. */
  public static final io.grpc.Context.Key<RequestTelemetry> KEY = io.grpc.Context.key("sphinx-request-telemetry");

  /** The logger of the per-call lines. */
  static final Logger REQUESTS = LoggerFactory.getLogger("sphinxserve.requests");

  static final AttributeKey<String> REQUEST_ID = AttributeKey.stringKey("sphinx.request_id");
  static final AttributeKey<String> IMAGE_CACHE_RESULT = AttributeKey.stringKey("sphinx.image_cache.result");
  static final AttributeKey<String> FINISH_REASON = AttributeKey.stringKey("sphinx.finish_reason");
  static final AttributeKey<Long> INPUT_TOKENS = AttributeKey.longKey("gen_ai.usage.input_tokens");
  static final AttributeKey<Long> OUTPUT_TOKENS = AttributeKey.longKey("gen_ai.usage.output_tokens");
  static final AttributeKey<Long> CACHED_TOKENS = AttributeKey.longKey("sphinx.usage.cached_prompt_tokens");
  static final AttributeKey<Long> GRPC_STATUS = AttributeKey.longKey("rpc.grpc.status_code");

  /** gRPC codes that mark a server span as an error (OpenTelemetry's RPC conventions); the rest are the caller's. */
  private static final Set<Status.Code> SERVER_ERRORS = EnumSet.of(Status.Code.UNKNOWN, Status.Code.DEADLINE_EXCEEDED,
      Status.Code.UNIMPLEMENTED, Status.Code.INTERNAL, Status.Code.UNAVAILABLE, Status.Code.DATA_LOSS);

  private static final Telemetry DISABLED = Telemetry.disabled();

  /** The protocol attribute of the latency histograms (one constant per protocol: recording allocates nothing). */
  static final AttributeKey<String> PROTOCOL = AttributeKey.stringKey("sphinx.protocol");
  private static final Attributes GRPC_ATTRIBUTES = Attributes.of(PROTOCOL, "grpc");
  private static final Attributes HTTP_ATTRIBUTES = Attributes.of(PROTOCOL, "http");

  private final String protocol;
  private final Attributes attributes;
  private final Telemetry telemetry;
  private final Span serverSpan;
  private final Context context;
  private final String method;
  private final long arrivalNanos;
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile String requestId = "";
  private volatile String tenant = "";
  private volatile Boolean imageCacheHit;
  private volatile FinishReason finishReason;
  private volatile Usage usage;

  // Confined to the engine thread after submitted().
  private Span queueSpan = Span.getInvalid();
  private Span prefillSpan = Span.getInvalid();
  private Span decodeSpan = Span.getInvalid();
  private long submitNanos;
  private long lastTokenNanos;
  private boolean anyToken;

  public RequestTelemetry(Telemetry telemetry, Span serverSpan, String method, long arrivalNanos) {
    this(telemetry, serverSpan, method, arrivalNanos, "grpc");
  }

  /** A call of {@code protocol} ({@code grpc} or {@code http}: the log line, the span and the histograms say which). */
  public RequestTelemetry(Telemetry telemetry, Span serverSpan, String method, long arrivalNanos, String protocol) {
    this.protocol = protocol;
    this.attributes = protocol.equals("http") ? HTTP_ATTRIBUTES : GRPC_ATTRIBUTES;
    serverSpan.setAttribute(PROTOCOL, protocol);
    this.telemetry = telemetry;
    this.serverSpan = serverSpan;
    this.context = Context.root().with(serverSpan);
    this.method = method;
    this.arrivalNanos = arrivalNanos;
  }

  /** The current gRPC call's telemetry, or a detached one recording nothing (no interceptor installed). */
  public static RequestTelemetry current() {
    RequestTelemetry current = KEY.get();
    return current != null ? current : new RequestTelemetry(DISABLED, Span.getInvalid(), "", System.nanoTime());
  }

  /** The call's trace id (32 hex digits; zeros when not traced). */
  public String traceId() {
    return serverSpan.getSpanContext().getTraceId();
  }

  /** Names the call's request (span attribute and log field). */
  public void requestId(String id) {
    requestId = id;
    serverSpan.setAttribute(REQUEST_ID, id);
  }

  /** Names the call's tenant (log field {@code tenant}; never a credential). */
  public void tenant(String name) {
    tenant = name;
  }

  /** Starts the image span (decode, preprocess, encode or a cache hit). */
  public Span imageStarted() {
    return child("sphinx.image");
  }

  /** Ends the image span with its cache result, or its error. */
  public void imageDone(Span span, boolean cacheHit, Throwable error) {
    imageCacheHit = cacheHit;
    span.setAttribute(IMAGE_CACHE_RESULT, cacheHit ? "hit" : "miss");
    if (error != null) span.setStatus(StatusCode.ERROR, error.getClass().getSimpleName());
    span.end();
  }

  /** The request goes to the engine: queueing starts. */
  public void submitted() {
    submitNanos = System.nanoTime();
    queueSpan = child("sphinx.queue");
  }

  /** The engine refused the request; the queue span ends with {@code status}. */
  public void rejected(Status status) {
    queueSpan.setStatus(StatusCode.ERROR, status.getCode().name());
    queueSpan.end();
  }

  /** First admission (engine thread): queueing ends, prefill starts. */
  public void scheduled() {
    long now = System.nanoTime();
    telemetry.queueTime.record((now - submitNanos) / 1e9, attributes);
    queueSpan.end();
    prefillSpan = child("sphinx.prefill");
  }

  /** Preempted (engine thread): an event on the phase it interrupted; recomputation is part of that phase. */
  public void preempted() {
    (anyToken ? decodeSpan : prefillSpan).addEvent("preempted");
  }

  /** A generated token at {@code nowNanos} (engine thread): TTFT on the first, inter-token latency after. */
  public void token(long nowNanos) {
    if (anyToken) {
      telemetry.interTokenLatency.record((nowNanos - lastTokenNanos) / 1e9, attributes);
    } else {
      anyToken = true;
      telemetry.timeToFirstToken.record((nowNanos - arrivalNanos) / 1e9, attributes);
      prefillSpan.end();
      decodeSpan = child("sphinx.decode");
    }
    lastTokenNanos = nowNanos;
  }

  /** The engine finished the request (engine thread): the open phase span ends, e2e latency is recorded. */
  public void finished(FinishReason reason, Usage finalUsage) {
    long now = System.nanoTime();
    telemetry.e2eLatency.record((now - arrivalNanos) / 1e9, attributes);
    finishReason = reason;
    usage = finalUsage;
    queueSpan.end(); // ending an ended span is a no-op; a request can finish in any phase
    prefillSpan.end();
    decodeSpan.end();
    serverSpan.setAttribute(FINISH_REASON, reason.name());
    if (finalUsage != null) {
      serverSpan.setAttribute(INPUT_TOKENS, (long) finalUsage.promptTokens());
      serverSpan.setAttribute(OUTPUT_TOKENS, (long) finalUsage.completionTokens());
      serverSpan.setAttribute(CACHED_TOKENS, (long) finalUsage.cachedPromptTokens());
    }
  }

  /** The call ended with {@code status} (closed or cancelled): ends the server span, writes the log line. Once. */
  /** The tenant, as the log line and the limits know it ("" without authentication). */
  String tenantName() {
    return tenant;
  }

  public void closed(Status status) {
    if (!closed.compareAndSet(false, true)) return;
    serverSpan.setAttribute(GRPC_STATUS, (long) status.getCode().value());
    if (SERVER_ERRORS.contains(status.getCode())) serverSpan.setStatus(StatusCode.ERROR, status.getCode().name());
    serverSpan.end();
    if (!REQUESTS.isInfoEnabled()) return;
    Usage u = usage;
    try (MDC.MDCCloseable a = MDC.putCloseable("request_id", requestId);
         MDC.MDCCloseable b = MDC.putCloseable("trace_id", traceId())) {
      var line = REQUESTS.atInfo()
          .addKeyValue("method", method)
          .addKeyValue("protocol", protocol)
          .addKeyValue("tenant", tenant)
          .addKeyValue("status", status.getCode().name())
          .addKeyValue("duration_ms", (System.nanoTime() - arrivalNanos) / 1_000_000);
      if (finishReason != null) line = line.addKeyValue("finish_reason", finishReason.name());
      if (u != null) {
        line = line.addKeyValue("prompt_tokens", u.promptTokens())
            .addKeyValue("completion_tokens", u.completionTokens())
            .addKeyValue("cached_prompt_tokens", u.cachedPromptTokens())
            .addKeyValue("preemptions", u.numPreemptions());
      }
      if (imageCacheHit != null) line = line.addKeyValue("image_cache_hit", imageCacheHit);
      line.log("call finished");
    }
  }

  private Span child(String name) {
    return telemetry.tracer().spanBuilder(name).setParent(context).setSpanKind(SpanKind.INTERNAL).startSpan();
  }

  /** The server span of a call to {@code method} (full gRPC name) whose parent came in {@code parent}. */
  public static Span serverSpan(Telemetry telemetry, String fullMethod, Context parent) {
    int slash = fullMethod.lastIndexOf('/');
    return telemetry.tracer().spanBuilder(fullMethod).setParent(parent).setSpanKind(SpanKind.SERVER)
        .setAttribute("rpc.system", "grpc")
        .setAttribute("rpc.service", slash < 0 ? fullMethod : fullMethod.substring(0, slash))
        .setAttribute("rpc.method", slash < 0 ? fullMethod : fullMethod.substring(slash + 1))
        .startSpan();
  }
}
