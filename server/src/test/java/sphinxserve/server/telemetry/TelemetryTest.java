package sphinxserve.server.telemetry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.OutputStreamAppender;
import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Context;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.slf4j.LoggerFactory;
import sphinxserve.client.Answer;
import sphinxserve.client.SphinxClient;
import sphinxserve.server.image.ImageDigest;
import sphinxserve.server.telemetry.Telemetry;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/**
 * Metrics, traces and logs of a real node (Netty on loopback, the real engine over the TEST bundle, the real
 * OpenTelemetry SDK): {@code /metrics} scraped over HTTP, spans from the SDK's in-memory exporter, log lines
 * through Logback's JSON encoder.
 */
final class TelemetryTest {

  private static final int METRICS_PORT = freePort();
  private static final int HELD_METRICS_PORT = freePort();
  private static final InMemorySpanExporter SPANS = InMemorySpanExporter.create();
  /** Traces, metrics and logs export nowhere but the in-memory exporter and /metrics, whatever OTEL_* says. */
  private static final Map<String, String> NO_EXPORT = Map.of("otel.traces.exporter", "none",
      "otel.metrics.exporter", "none", "otel.logs.exporter", "none");

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension()
      .withTelemetry(() -> Telemetry.open(METRICS_PORT, NO_EXPORT, SimpleSpanProcessor.create(SPANS)));

  /** One running request at a time, so a long answer holds the others in the queue. */
  @RegisterExtension
  static final NodeExtension HELD = new NodeExtension("--max-running-requests=1")
      .withTelemetry(() -> Telemetry.open(HELD_METRICS_PORT, NO_EXPORT));

  private static final SamplingParams GREEDY_6 = SamplingParams.newBuilder().setMaxTokens(6).setIgnoreEos(true).build();
  private static final HttpClient HTTP = HttpClient.newHttpClient();

  @Test
  void metrics_afterTraffic_countEveryCompletedRequestAndReturnToIdle() throws Exception {
    Map<String, Double> before = scrape(METRICS_PORT);
    byte[] image = TestImages.png(TestImages.noise(40, 40, 21));
    int numCompleted = 0;
    int numTokens = 0;
    for (int i = 0; i < 3; i++) {
      numTokens += completionTokens(generate(NODE, request("count " + i, null)));
      numCompleted++;
    }
    numTokens += completionTokens(generate(NODE, request("image", Content.newBuilder().setImage(ByteString.copyFrom(image)).build())));
    numTokens += completionTokens(generate(NODE, request("again", Content.newBuilder().setImageDigest(ImageDigest.of(image)).build())));
    numCompleted += 2;
    waitUntil(() -> NODE.backend().stats().numRunning() == 0 && NODE.backend().kvStats().numInUseBlocks() == 0);

    Map<String, Double> after = scrape(METRICS_PORT);
    assertEquals(numCompleted, delta(before, after, "sphinx_request_time_to_first_token_seconds_count{sphinx_protocol=\"grpc\"}"), "TTFT: one per completed request");
    assertEquals(numCompleted, delta(before, after, "sphinx_request_e2e_latency_seconds_count{sphinx_protocol=\"grpc\"}"));
    assertEquals(numCompleted, delta(before, after, "sphinx_request_queue_time_seconds_count{sphinx_protocol=\"grpc\"}"));
    assertEquals(numTokens - numCompleted, delta(before, after, "sphinx_request_inter_token_latency_seconds_count{sphinx_protocol=\"grpc\"}"),
        "one inter-token gap per token after the first");
    assertEquals(numTokens, delta(before, after, "sphinx_tokens_generation_total"));
    assertTrue(delta(before, after, "sphinx_tokens_prompt_total") > NODE.bundle().spec().vision().tokensPerImage());
    assertEquals(1, delta(before, after, "sphinx_image_cache_lookups_total{result=\"hit\"}"), "the digest found the image");
    assertEquals(1, delta(before, after, "sphinx_image_cache_lookups_total{result=\"miss\"}"), "the bytes were encoded");
    assertTrue(delta(before, after, "sphinx_prefix_cache_hits_total") >= NODE.bundle().spec().vision().tokensPerImage(),
        "the second image request reused the image's blocks");
    assertTrue(delta(before, after, "sphinx_prefix_cache_queries_total") >= delta(before, after, "sphinx_prefix_cache_hits_total"));
    assertEquals(0.0, after.get("sphinx_kv_cache_usage"), "KV usage returns to 0 when idle");
    assertEquals(0.0, after.get("sphinx_scheduler_running"));
    assertEquals(0.0, after.get("sphinx_scheduler_waiting"));
    assertEquals(0.0, after.getOrDefault("sphinx_scheduler_preemptions_total", 0.0));
    // The TTFT histogram has the buckets DESIGN.md asks for: 10 ms to 60 s.
    assertTrue(after.containsKey("sphinx_request_time_to_first_token_seconds_bucket{le=\"0.01\",sphinx_protocol=\"grpc\"}"));
    assertTrue(after.containsKey("sphinx_request_time_to_first_token_seconds_bucket{le=\"60.0\",sphinx_protocol=\"grpc\"}"));
    assertTrue(after.containsKey("sphinx_request_inter_token_latency_seconds_bucket{le=\"0.001\",sphinx_protocol=\"grpc\"}"));
    assertTrue(after.containsKey("sphinx_request_inter_token_latency_seconds_bucket{le=\"5.0\",sphinx_protocol=\"grpc\"}"));
  }

  @Test
  void metrics_httpRequests_carryTheirProtocol() throws Exception {
    Map<String, Double> before = scrape(METRICS_PORT);
    HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + NODE.node().httpPort() + "/v1/chat/completions"))
        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 3}"))
        .build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), r.body());
    waitUntil(() -> NODE.backend().stats().numRunning() == 0);
    Map<String, Double> after = scrape(METRICS_PORT);
    assertEquals(1, delta(before, after, "sphinx_request_e2e_latency_seconds_count{sphinx_protocol=\"http\"}"), "one HTTP request");
    assertEquals(0, delta(before, after, "sphinx_request_e2e_latency_seconds_count{sphinx_protocol=\"grpc\"}"));
  }

  @Test
  void metrics_heldQueue_waitingAndRunningGaugesReflectIt() throws Exception {
    SamplingParams forever = SamplingParams.newBuilder().setMaxTokens(600).setIgnoreEos(true).build();
    List<Context.CancellableContext> calls = new ArrayList<>();
    try {
      for (int i = 0; i < 3; i++) {
        Context.CancellableContext call = Context.current().withCancellation();
        calls.add(call);
        GenerateRequest request = request("held " + i, null).toBuilder().setSampling(forever).build();
        Iterator<GenerateResponse> stream = call.call(() -> SphinxGrpc.newBlockingStub(HELD.channel()).generate(request));
        if (i == 0) stream.next(); // the first one runs before the others arrive
      }
      waitUntil(() -> HELD.backend().stats().numWaiting() == 2);
      Map<String, Double> held = scrape(HELD_METRICS_PORT);
      assertEquals(1.0, held.get("sphinx_scheduler_running"));
      assertEquals(2.0, held.get("sphinx_scheduler_waiting"));
      assertTrue(held.get("sphinx_kv_cache_usage") > 0, "the running request holds blocks");
    } finally {
      calls.forEach(c -> c.cancel(null));
    }
    waitUntil(() -> HELD.backend().stats().numRunning() == 0 && HELD.backend().stats().numWaiting() == 0
        && HELD.backend().kvStats().numInUseBlocks() == 0);
    Map<String, Double> idle = scrape(HELD_METRICS_PORT);
    assertEquals(0.0, idle.get("sphinx_scheduler_running"));
    assertEquals(0.0, idle.get("sphinx_scheduler_waiting"));
    assertEquals(0.0, idle.get("sphinx_kv_cache_usage"));
  }

  @Test
  void spans_oneRequest_formATreeUnderTheClientsTrace() throws Exception {
    // The caller's span, as its own tracing (SDK or agent) would have it current; the client needs only the API.
    Span clientSpan = Span.wrap(SpanContext.create("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
        TraceFlags.getSampled(), TraceState.getDefault()));
    byte[] image = TestImages.png(TestImages.noise(36, 44, 22));
    try (SphinxClient client = SphinxClient.builder().target("127.0.0.1:" + NODE.node().port()).defaultSampling(GREEDY_6).build();
         Scope ignored = clientSpan.makeCurrent()) {
      Answer answer = client.ask(sphinxserve.client.Image.of(image), "what is in it?");
      assertEquals(6, answer.usage().getCompletionTokens());
    }
    String traceId = clientSpan.getSpanContext().getTraceId();
    waitUntil(() -> SPANS.getFinishedSpanItems().stream().anyMatch(s -> s.getTraceId().equals(traceId) && s.getKind() == SpanKind.SERVER));
    List<SpanData> trace = SPANS.getFinishedSpanItems().stream().filter(s -> s.getTraceId().equals(traceId)).toList();
    SpanData server = only(trace, "sphinx.v1.Sphinx/Generate");
    assertEquals(SpanKind.SERVER, server.getKind());
    assertEquals(clientSpan.getSpanContext().getSpanId(), server.getParentSpanId(), "the client's span is the server span's parent");
    assertEquals("LENGTH", server.getAttributes().get(AttributeKey.stringKey("sphinx.finish_reason")));
    assertEquals(6L, server.getAttributes().get(AttributeKey.longKey("gen_ai.usage.output_tokens")));
    assertEquals(0L, server.getAttributes().get(AttributeKey.longKey("rpc.grpc.status_code")));
    SpanData imageSpan = only(trace, "sphinx.image");
    assertEquals("miss", imageSpan.getAttributes().get(AttributeKey.stringKey("sphinx.image_cache.result")));
    SpanData queue = only(trace, "sphinx.queue");
    SpanData prefill = only(trace, "sphinx.prefill");
    SpanData decode = only(trace, "sphinx.decode");
    for (SpanData child : List.of(imageSpan, queue, prefill, decode)) {
      assertEquals(server.getSpanId(), child.getParentSpanId(), child.getName() + " is a child of the server span");
      assertTrue(child.getStartEpochNanos() >= server.getStartEpochNanos(), child.getName() + " starts within the call");
    }
    assertTrue(imageSpan.getEndEpochNanos() <= queue.getStartEpochNanos(), "the image is encoded before queueing");
    assertTrue(queue.getEndEpochNanos() <= prefill.getStartEpochNanos());
    assertTrue(prefill.getEndEpochNanos() <= decode.getStartEpochNanos());
    assertTrue(decode.getEndEpochNanos() <= server.getEndEpochNanos());
    assertEquals(5, trace.size(), "server span and four children: " + trace.stream().map(SpanData::getName).toList());
  }

  @Test
  void logs_oneJsonLinePerCall_carryRequestAndTraceIdsButNoPrompt() throws Exception {
    LoggerContext logging = (LoggerContext) LoggerFactory.getILoggerFactory();
    ch.qos.logback.classic.Logger requests = logging.getLogger("sphinxserve.requests");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    JsonEncoder encoder = new JsonEncoder();
    encoder.setContext(logging);
    encoder.start();
    OutputStreamAppender<ILoggingEvent> appender = new OutputStreamAppender<>();
    appender.setContext(logging);
    appender.setEncoder(encoder);
    appender.setOutputStream(out);
    appender.start();
    Level level = requests.getLevel();
    requests.addAppender(appender);
    requests.setLevel(Level.INFO);
    String secret = "the secret prompt text 8f3a";
    try {
      generate(NODE, request(secret, null).toBuilder().setRequestId("log-req-1").build());
      waitUntil(() -> out.toString(StandardCharsets.UTF_8).contains("log-req-1"));
    } finally {
      requests.detachAppender(appender);
      requests.setLevel(level);
      appender.stop();
    }
    String line = out.toString(StandardCharsets.UTF_8).lines().filter(l -> l.contains("log-req-1")).findFirst().orElseThrow();
    assertTrue(line.startsWith("{") && line.endsWith("}"), "one JSON object per line: " + line);
    assertTrue(line.contains("\"request_id\":\"log-req-1\""), line);
    Matcher traceId = Pattern.compile("\"trace_id\":\"([0-9a-f]{32})\"").matcher(line);
    assertTrue(traceId.find(), line);
    String id = traceId.group(1);
    assertTrue(SPANS.getFinishedSpanItems().stream().anyMatch(s -> s.getTraceId().equals(id) && s.getKind() == SpanKind.SERVER),
        "the log's trace id is the call's trace");
    assertTrue(line.contains("\"completion_tokens\":\"6\"") || line.contains("\"completion_tokens\":6"), line);
    assertTrue(line.contains("LENGTH"), line);
    assertFalse(line.contains("secret"), "prompt text is never logged: " + line);
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private static GenerateRequest request(String text, Content image) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(image);
    user.addContent(Content.newBuilder().setText(text));
    return GenerateRequest.newBuilder().addMessages(user).setSampling(GREEDY_6).build();
  }

  private static List<GenerateResponse> generate(NodeExtension node, GenerateRequest request) {
    List<GenerateResponse> responses = new ArrayList<>();
    SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(60, TimeUnit.SECONDS).generate(request).forEachRemaining(responses::add);
    assertEquals(FinishReason.LENGTH, responses.getLast().getFinishReason());
    return responses;
  }

  private static int completionTokens(List<GenerateResponse> responses) {
    return responses.getLast().getUsage().getCompletionTokens();
  }

  private static SpanData only(List<SpanData> spans, String name) {
    List<SpanData> named = spans.stream().filter(s -> s.getName().equals(name)).toList();
    assertEquals(1, named.size(), name + " in " + spans.stream().map(SpanData::getName).toList());
    return named.getFirst();
  }

  /** {@code after − before} of one sample (0 where absent). */
  private static double delta(Map<String, Double> before, Map<String, Double> after, String sample) {
    return after.getOrDefault(sample, 0.0) - before.getOrDefault(sample, 0.0);
  }

  /** {@code name{b="1",a="2"}} as {@code name{a="2",b="1"}}: the exporter's label order is not the test's business. */
  private static String sortedLabels(String sample) {
    int brace = sample.indexOf('{');
    if (brace < 0) return sample;
    java.util.List<String> labels = new java.util.ArrayList<>(java.util.List.of(sample.substring(brace + 1, sample.length() - 1).split(",(?=[a-z_]+=)")));
    java.util.Collections.sort(labels);
    return sample.substring(0, brace) + "{" + String.join(",", labels) + "}";
  }

  /**
   * Scrapes {@code /metrics} over HTTP: sample name with its labels, minus the {@code otel_scope_*} ones, → value.
   */
  static Map<String, Double> scrape(int port) throws IOException, InterruptedException {
    HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode());
    Map<String, Double> samples = new java.util.HashMap<>();
    for (String line : response.body().lines().toList()) {
      if (line.isBlank() || line.startsWith("#")) continue;
      int space = line.lastIndexOf(' ');
      String name = line.substring(0, space).replaceAll("otel_scope_[a-z_]+=\"[^\"]*\",?", "").replace(",}", "}").replace("{}", "");
      samples.put(sortedLabels(name), Double.parseDouble(line.substring(space + 1)));
    }
    return samples;
  }

  private static void waitUntil(BooleanSupplier condition) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > end) throw new AssertionError("condition not reached in 30 s");
      Thread.sleep(5);
    }
  }

  private static int freePort() {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
