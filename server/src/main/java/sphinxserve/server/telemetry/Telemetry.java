package sphinxserve.server.telemetry;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.metrics.DoubleHistogram;
import io.opentelemetry.api.metrics.Meter;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.propagation.TextMapPropagator;
import io.opentelemetry.exporter.prometheus.PrometheusHttpServer;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.autoconfigure.AutoConfiguredOpenTelemetrySdk;
import io.opentelemetry.sdk.autoconfigure.spi.ConfigProperties;
import io.opentelemetry.sdk.trace.SpanProcessor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import sphinxserve.kvcache.KvCacheStats;
import sphinxserve.scheduler.EngineStats;
import sphinxserve.server.image.ImageCache;

/**
 * The node's OpenTelemetry: the SDK, the instruments named in DESIGN.md ("Observability names") and the
 * Prometheus scrape endpoint.
 *
 * <p>How: {@link #open} builds the SDK with the autoconfigure extension, so the standard {@code OTEL_*}
 * environment variables (and {@code otel.*} system properties) configure it: service name, resource, sampler,
 * propagators, exporters. Exporters default to none unless an OTLP endpoint is set
 * ({@code OTEL_EXPORTER_OTLP_ENDPOINT} or a per-signal one), so a node without a collector never retries
 * sending to localhost. The Prometheus exporter's HTTP server (all interfaces, like the gRPC port) is a metric reader on
 * {@code --metrics-port} ({@code /metrics}); 0 turns it off.
 *
 * <p>Instruments. Request latencies are histograms in seconds with explicit buckets suited to LLM serving
 * (TTFT 10 ms–60 s, inter-token 1 ms–5 s), recorded per request by {@link RequestTelemetry}. Everything the
 * engine already counts is read at collection time by observable instruments ({@link #observeEngine},
 * {@link #observeImages}): no work per token beyond the inter-token histogram.
 */
public final class Telemetry implements AutoCloseable {

  /** Instrumentation scope of every instrument and span. */
  static final String SCOPE = "sphinxserve.server";

  /** TTFT buckets, seconds: 10 ms to 60 s. */
  static final List<Double> TTFT_BUCKETS = List.of(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
      1.0, 1.5, 2.0, 2.5, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0);

  /** Inter-token latency buckets, seconds: 1 ms to 5 s. */
  static final List<Double> INTER_TOKEN_BUCKETS = List.of(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
      0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0);

  /** Queue-time buckets, seconds: 1 ms to 5 min. */
  static final List<Double> QUEUE_BUCKETS = List.of(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
      2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0);

  /** End-to-end latency buckets, seconds: 10 ms to 30 min. */
  static final List<Double> E2E_BUCKETS = List.of(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
      20.0, 30.0, 40.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1800.0);

  /** The {@code result} attribute of {@code sphinx.image_cache.lookups}. */
  static final AttributeKey<String> RESULT = AttributeKey.stringKey("result");

  private final OpenTelemetry openTelemetry;
  private final OpenTelemetrySdk sdk; // null when disabled
  private final boolean enabled;
  private final Tracer tracer;
  private final Meter meter;
  private final List<AutoCloseable> observers = new ArrayList<>();
  final DoubleHistogram timeToFirstToken;
  final DoubleHistogram interTokenLatency;
  final DoubleHistogram queueTime;
  final DoubleHistogram e2eLatency;

  private Telemetry(OpenTelemetry openTelemetry, OpenTelemetrySdk sdk, boolean enabled) {
    this.openTelemetry = openTelemetry;
    this.sdk = sdk;
    this.enabled = enabled;
    this.tracer = openTelemetry.getTracer(SCOPE);
    this.meter = openTelemetry.getMeter(SCOPE);
    this.timeToFirstToken = histogram("sphinx.request.time_to_first_token",
        "From the call's arrival to its first generated token", TTFT_BUCKETS);
    this.interTokenLatency = histogram("sphinx.request.inter_token_latency",
        "Between consecutive generated tokens of one request", INTER_TOKEN_BUCKETS);
    this.queueTime = histogram("sphinx.request.queue_time",
        "From submission to the engine to the first admission into the running batch", QUEUE_BUCKETS);
    this.e2eLatency = histogram("sphinx.request.e2e_latency",
        "From the call's arrival to its last generated token or its end", E2E_BUCKETS);
  }

  /** No telemetry: no-op tracer and meter, no endpoint. What tests and benchmarks use as "off". */
  public static Telemetry disabled() {
    return new Telemetry(OpenTelemetry.noop(), null, false);
  }

  /**
   * The SDK from {@code OTEL_*} (system properties over environment over {@code defaults}), with Prometheus on
   * {@code metricsPort} of the loopback interface (0: none) and {@code extraSpanProcessors} added to the tracer provider (tests add an
   * in-memory exporter's). The SDK is not made global.
   */
  public static Telemetry open(int metricsPort, Map<String, String> defaults, SpanProcessor... extraSpanProcessors) {
    return open(java.net.InetAddress.getLoopbackAddress(), metricsPort, defaults, extraSpanProcessors);
  }

  /**
   * As {@link #open(int, Map, SpanProcessor...)}, the Prometheus endpoint listening on {@code metricsAddress} only
   * ({@code NodeConfig.metricsAddress}: loopback unless widened; a wildcard address is every interface).
   */
  public static Telemetry open(java.net.InetAddress metricsAddress, int metricsPort, Map<String, String> defaults,
      SpanProcessor... extraSpanProcessors) {
    AutoConfiguredOpenTelemetrySdk configured = AutoConfiguredOpenTelemetrySdk.builder()
        .addPropertiesSupplier(() -> withServiceName(defaults))
        .addPropertiesCustomizer(Telemetry::exportersOnlyWithAnEndpoint)
        .addMeterProviderCustomizer((builder, config) -> metricsPort == 0 ? builder
            : builder.registerMetricReader(PrometheusHttpServer.builder().setHost(metricsAddress.getHostAddress()).setPort(metricsPort).build()))
        .addTracerProviderCustomizer((builder, config) -> {
          for (SpanProcessor p : extraSpanProcessors) builder.addSpanProcessor(p);
          return builder;
        })
        .disableShutdownHook() // the node shuts it down after draining, so the last spans are exported
        .build();
    OpenTelemetrySdk sdk = configured.getOpenTelemetrySdk();
    return new Telemetry(sdk, sdk, true);
  }

  private static Map<String, String> withServiceName(Map<String, String> defaults) {
    Map<String, String> all = new HashMap<>(defaults);
    all.putIfAbsent("otel.service.name", "sphinx-serve");
    return all;
  }

  /** Traces, metrics and logs export nowhere unless an exporter or an OTLP endpoint was configured. */
  private static Map<String, String> exportersOnlyWithAnEndpoint(ConfigProperties config) {
    Map<String, String> overrides = new HashMap<>();
    boolean anyEndpoint = config.getString("otel.exporter.otlp.endpoint") != null;
    for (String signal : List.of("traces", "metrics", "logs")) {
      boolean endpoint = anyEndpoint || config.getString("otel.exporter.otlp." + signal + ".endpoint") != null;
      if (config.getString("otel." + signal + ".exporter") == null && !endpoint) overrides.put("otel." + signal + ".exporter", "none");
    }
    return overrides;
  }

  private DoubleHistogram histogram(String name, String description, List<Double> buckets) {
    return meter.histogramBuilder(name).setDescription(description).setUnit("s")
        .setExplicitBucketBoundariesAdvice(buckets).build();
  }

  /** Whether this is a real SDK (spans and metrics recorded), not {@link #disabled()}. */
  public boolean isEnabled() {
    return enabled;
  }

  /** The API handle (tracer, meter and propagators). */
  public OpenTelemetry openTelemetry() {
    return openTelemetry;
  }

  Tracer tracer() {
    return tracer;
  }

  public TextMapPropagator propagator() {
    return openTelemetry.getPropagators().getTextMapPropagator();
  }

  /** Observes the engine's gauges and counters and the KV cache's prefix-cache counters at each collection. */
  public void observeEngine(EngineStats stats, Supplier<KvCacheStats> kvStats) {
    observers.add(meter.upDownCounterBuilder("sphinx.scheduler.running").setUnit("{request}")
        .setDescription("Requests in the running batch").buildWithCallback(m -> m.record(stats.numRunning())));
    observers.add(meter.upDownCounterBuilder("sphinx.scheduler.waiting").setUnit("{request}")
        .setDescription("Accepted requests waiting for admission").buildWithCallback(m -> m.record(stats.numWaiting())));
    observers.add(meter.gaugeBuilder("sphinx.kv_cache.usage").setUnit("1")
        .setDescription("Fraction of KV-cache blocks in use, 0-1").buildWithCallback(m -> m.record(kvStats.get().usage())));
    observers.add(meter.counterBuilder("sphinx.prefix_cache.queries").setUnit("{token}")
        .setDescription("Prompt tokens looked up in the prefix cache")
        .buildWithCallback(m -> m.record(kvStats.get().numPrefixQueryTokens())));
    observers.add(meter.counterBuilder("sphinx.prefix_cache.hits").setUnit("{token}")
        .setDescription("Prompt tokens found in the prefix cache")
        .buildWithCallback(m -> m.record(kvStats.get().numPrefixHitTokens())));
    observers.add(meter.counterBuilder("sphinx.scheduler.preemptions").setUnit("{preemption}")
        .setDescription("Requests preempted (blocks freed, recomputed later)")
        .buildWithCallback(m -> m.record(stats.numPreemptions())));
    observers.add(meter.counterBuilder("sphinx.tokens.prompt").setUnit("{token}")
        .setDescription("Prompt tokens of accepted requests, image positions included")
        .buildWithCallback(m -> m.record(stats.numPromptTokens())));
    observers.add(meter.counterBuilder("sphinx.tokens.generation").setUnit("{token}")
        .setDescription("Generated tokens").buildWithCallback(m -> m.record(stats.numGeneratedTokens())));
  }

  /** Observes the image cache's lookups by result (hit, miss). */
  public void observeImages(ImageCache images) {
    Attributes hit = Attributes.of(RESULT, "hit");
    Attributes miss = Attributes.of(RESULT, "miss");
    observers.add(meter.counterBuilder("sphinx.image_cache.lookups").setUnit("{lookup}")
        .setDescription("Image cache lookups by result: hit (held or being encoded) or miss")
        .buildWithCallback(m -> {
          m.record(images.numHits(), hit);
          m.record(images.numMisses(), miss);
        }));
  }

  /** Stops observing, flushes and shuts the SDK down (the Prometheus endpoint closes). Idempotent. */
  @Override
  public void close() {
    for (AutoCloseable o : observers) {
      try {
        o.close();
      } catch (Exception ignored) {
        // Observable instruments' close does not fail.
      }
    }
    observers.clear();
    if (sdk != null) sdk.close();
  }
}
