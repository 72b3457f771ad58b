package sphinxserve.server.telemetry;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.telemetry.Telemetry;

/**
 * Throughput of the whole node (gRPC on loopback, engine, ONNX Runtime) with telemetry off and on, in one JVM
 * over one opened model: the same workload alternates between a node with {@link Telemetry#disabled()} and one
 * with the real SDK (every span sampled and batch-exported to a discarding exporter, every instrument
 * recording, {@code /metrics} scraped once a second), the order flipped every round, after a warm-up round.
 *
 * <p>Run: {@code bin/bench-observability [--preset test|tiny] [--rounds 5] [--requests 96] [--concurrency 16]
 * [--max-tokens 32]}; results in docs/PERFORMANCE.md ("Observability overhead").
 */
public final class TelemetryOverheadBenchmark {

  private TelemetryOverheadBenchmark() {}

  public static void main(String[] args) throws Exception {
    // Opening a bundle on the launcher's 1 MiB main-thread stack crashes in native code (SphinxNode.main).
    Exception[] failed = new Exception[1];
    Thread bench = new Thread(null, () -> {
      try {
        bench(args);
      } catch (Exception e) {
        failed[0] = e;
      }
    }, "bench", 64L << 20);
    bench.start();
    bench.join();
    if (failed[0] != null) throw failed[0];
  }

  private static void bench(String[] args) throws Exception {
    Map<String, String> o = new java.util.HashMap<>(Map.of("preset", "test", "rounds", "5", "requests", "96",
        "concurrency", "16", "max-tokens", "32"));
    for (int i = 0; i + 1 < args.length; i += 2) o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    BundlePreset preset = BundlePreset.valueOf(o.get("preset").toUpperCase(Locale.ROOT));
    int rounds = Integer.parseInt(o.get("rounds"));
    int numRequests = Integer.parseInt(o.get("requests"));
    int concurrency = Integer.parseInt(o.get("concurrency"));
    int maxTokens = Integer.parseInt(o.get("max-tokens"));

    Bundle bundle = TestBundles.get(preset);
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 2048));
         OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      System.out.printf("preset %s, %d requests x %d tokens, %d concurrent, %d cores%n", preset, numRequests, maxTokens,
          concurrency, Runtime.getRuntime().availableProcessors());
      run(bundle, runtime, kv, false, numRequests, concurrency, maxTokens); // warm-up, both paths
      run(bundle, runtime, kv, true, numRequests, concurrency, maxTokens);
      List<Double> off = new ArrayList<>();
      List<Double> on = new ArrayList<>();
      for (int round = 0; round < rounds; round++) {
        for (boolean telemetry : round % 2 == 0 ? new boolean[] {false, true} : new boolean[] {true, false}) {
          double tokensPerSecond = run(bundle, runtime, kv, telemetry, numRequests, concurrency, maxTokens);
          (telemetry ? on : off).add(tokensPerSecond);
          System.out.printf("round %d  telemetry %-3s  %8.1f tokens/s%n", round, telemetry ? "on" : "off", tokensPerSecond);
        }
      }
      double medianOff = median(off);
      double medianOn = median(on);
      System.out.printf("median  off %.1f tokens/s  on %.1f tokens/s  overhead %+.2f%%%n", medianOff, medianOn,
          100 * (medianOff - medianOn) / medianOff);
    }
  }

  /** One node, one workload; generated tokens per second of wall time. */
  private static double run(Bundle bundle, OnnxModelRuntime runtime, KvCacheStorage kv, boolean withTelemetry,
      int numRequests, int concurrency, int maxTokens) throws Exception {
    int metricsPort = freePort();
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--drain-seconds=5", "--kv-blocks=2048"}, Map.of());
    Telemetry telemetry = withTelemetry
        ? Telemetry.open(metricsPort, Map.of("otel.traces.sampler", "always_on", "otel.traces.exporter", "none",
            "otel.metrics.exporter", "none", "otel.logs.exporter", "none"), BatchSpanProcessor.builder(new DiscardingExporter()).build())
        : Telemetry.disabled();
    SphinxNode node = SphinxNode.start(config, bundle, runtime, new EngineBackend(runtime, kv, config), telemetry);
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
    AtomicBoolean done = new AtomicBoolean();
    Thread scraper = Thread.ofVirtual().start(() -> scrapeEverySecond(metricsPort, withTelemetry, done));
    ExecutorService clients = Executors.newFixedThreadPool(concurrency);
    AtomicLong numTokens = new AtomicLong();
    AtomicLong next = new AtomicLong();
    SamplingParams sampling = SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true).build();
    try {
      long start = System.nanoTime();
      List<Future<?>> futures = new ArrayList<>();
      for (int c = 0; c < concurrency; c++) {
        futures.add(clients.submit(() -> {
          SphinxGrpc.SphinxBlockingStub stub = SphinxGrpc.newBlockingStub(channel);
          for (long i; (i = next.getAndIncrement()) < numRequests; ) {
            GenerateRequest request = GenerateRequest.newBuilder().setRequestId("bench-" + i).setSampling(sampling)
                .addMessages(Message.newBuilder().setRole(Role.USER)
                    .addContent(Content.newBuilder().setText("Describe request number " + i + " in detail."))).build();
            var stream = stub.withDeadlineAfter(5, TimeUnit.MINUTES).generate(request);
            while (stream.hasNext()) {
              GenerateResponse r = stream.next();
              numTokens.addAndGet(r.getTokenIdsCount());
            }
          }
          return null;
        }));
      }
      for (Future<?> f : futures) f.get();
      return numTokens.get() / ((System.nanoTime() - start) / 1e9);
    } finally {
      done.set(true);
      scraper.join();
      clients.shutdown();
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      node.close();
    }
  }

  private static void scrapeEverySecond(int port, boolean enabled, AtomicBoolean done) {
    if (!enabled) return;
    HttpClient http = HttpClient.newHttpClient();
    while (!done.get()) {
      try {
        http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics")).build(), HttpResponse.BodyHandlers.discarding());
        Thread.sleep(1000);
      } catch (IOException e) {
        return;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private static double median(List<Double> values) {
    List<Double> sorted = values.stream().sorted().toList();
    int n = sorted.size();
    return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  /** Takes batches as an exporter would and drops them: the SDK's whole span path without a network. */
  private static final class DiscardingExporter implements SpanExporter {
    @Override
    public CompletableResultCode export(Collection<SpanData> spans) {
      return CompletableResultCode.ofSuccess();
    }

    @Override
    public CompletableResultCode flush() {
      return CompletableResultCode.ofSuccess();
    }

    @Override
    public CompletableResultCode shutdown() {
      return CompletableResultCode.ofSuccess();
    }
  }
}
