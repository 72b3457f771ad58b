package sphinxserve.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The same load against any OpenAI-compatible server — the node's HTTP API and llama.cpp's llama-server alike — so
 * the peer table compares like with like (bin/bench-peers): per case, N concurrent streamed {@code /v1/completions}
 * requests, each a raw prompt of P token ids (BOS, then ids spread over the vocabulary, different per request, as
 * shared/peers/peer-server.mjs makes them), T greedy tokens with EOS ignored. Prints one JSON line per case: output
 * tokens per second over the case's wall time, median time to first token.
 *
 * <p>A case {@code stormNxP} measures decode latency under prefill instead: one stream decodes (a 96-token prompt),
 * and once it has 16 tokens, N prompts of P tokens arrive at once (T tokens each); it prints the stream's
 * inter-token gaps that end while they are served (p50, p99, max), the storm's wall time and its tokens per
 * second (prompt and generated tokens of the N requests plus the stream's own), then cancels the stream.
 *
 * <p>{@code --url http://127.0.0.1:8080 [--cases 1x64,8x64,16x64,32x64,8x1000] [--tokens 64] [--label node-fp32]}
 */
public final class OpenAiLoadBenchmark {

  private static final ObjectMapper JSON = new ObjectMapper();

  private record Result(int tokens, long ttftMillis) {}

  private OpenAiLoadBenchmark() {}

  public static void main(String[] args) throws Exception {
    String url = "http://127.0.0.1:8080";
    String cases = "1x64,8x64,16x64,32x64,8x1000";
    int tokens = 64;
    String label = "";
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--url" -> url = args[++i];
        case "--cases" -> cases = args[++i];
        case "--tokens" -> tokens = Integer.parseInt(args[++i]);
        case "--label" -> label = args[++i];
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10))
        .executor(Executors.newVirtualThreadPerTaskExecutor()).build();
    int salt = ThreadLocalRandom.current().nextInt(20000);
    // Warm-up, not recorded: a JVM server compiles its hot paths during the first requests (llama.cpp has no such
    // phase), so each system first serves a small concurrent round.
    try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
      String target = url;
      for (int i = 0; i < 8; i++) {
        int[] prompt = prompt(64, salt - 1000 - i * 131);
        pool.submit(() -> one(http, target, prompt, 64));
      }
    }
    one(http, url, prompt(64, salt - 5000), 64);
    for (String c : cases.split(",")) {
      if (c.startsWith("storm")) {
        String[] np = c.substring("storm".length()).split("x");
        storm(http, url, label, c, Integer.parseInt(np[0]), Integer.parseInt(np[1]), tokens, salt);
        continue;
      }
      String[] np = c.split("x");
      int n = Integer.parseInt(np[0]);
      int p = Integer.parseInt(np[1]);
      long start = System.nanoTime();
      List<Future<Result>> futures = new ArrayList<>();
      String target = url;
      int t = tokens;
      try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
        for (int i = 0; i < n; i++) {
          int[] prompt = prompt(p, salt + (i + n * 100) * 131);
          futures.add(pool.submit(() -> one(http, target, prompt, t)));
        }
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      int total = 0;
      long[] ttft = new long[n];
      for (int i = 0; i < n; i++) {
        Result r = futures.get(i).get();
        total += r.tokens();
        ttft[i] = r.ttftMillis();
      }
      Arrays.sort(ttft);
      System.out.printf("{\"label\": \"%s\", \"case\": \"%s\", \"tok_s\": %.1f, \"ttft_ms\": %d, \"tokens\": %d}%n", label, c,
          total / seconds, ttft[n / 2], total);
    }
  }

  /** The {@code stormNxP} case (see the class comment). */
  private static void storm(HttpClient http, String url, String label, String c, int n, int p, int tokens, int salt) throws Exception {
    List<Long> arrivals = Collections.synchronizedList(new ArrayList<>());
    AtomicBoolean stop = new AtomicBoolean();
    long start;
    long end;
    int generated = 0;
    long[] ttft = new long[n];
    try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
      Future<?> stream = pool.submit(() -> {
        stream(http, url, prompt(96, salt - 7000), 1500, arrivals, stop);
        return null;
      });
      try {
        while (arrivals.size() < 16) {
          if (stream.isDone()) {
            stream.get(); // rethrows the stream's failure, if that is why it ended
            throw new IllegalStateException(c + ": the stream ended after " + arrivals.size() + " tokens, before the storm");
          }
          Thread.sleep(5);
        }
        start = System.nanoTime();
        List<Future<Result>> futures = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          int[] prompt = prompt(p, salt + 50_000 + i * 977);
          futures.add(pool.submit(() -> one(http, url, prompt, tokens)));
        }
        for (int i = 0; i < n; i++) {
          Result r = futures.get(i).get();
          generated += r.tokens();
          ttft[i] = r.ttftMillis();
        }
        end = System.nanoTime();
      } finally {
        stop.set(true); // also when a storm request failed: the pool's close waits for the stream
      }
      stream.get();
    }
    List<Double> gaps = new ArrayList<>();
    int streamTokens = 0;
    synchronized (arrivals) {
      for (int i = 1; i < arrivals.size(); i++) {
        long at = arrivals.get(i);
        if (at <= start || at > end) continue;
        gaps.add((at - arrivals.get(i - 1)) / 1e6);
        streamTokens++;
      }
    }
    if (gaps.isEmpty()) throw new IllegalStateException(c + ": the stream produced no token during the storm");
    gaps.sort(null);
    Arrays.sort(ttft);
    double seconds = (end - start) / 1e9;
    System.out.printf(Locale.ROOT, "{\"label\": \"%s\", \"case\": \"%s\", \"storm_s\": %.2f, \"itl_p50_ms\": %.0f, "
        + "\"itl_p99_ms\": %.0f, \"itl_max_ms\": %.0f, \"gaps\": %d, \"tok_s\": %.1f, \"ttft_ms\": %d}%n", label, c, seconds,
        percentile(gaps, 0.50), percentile(gaps, 0.99), gaps.get(gaps.size() - 1), gaps.size(),
        ((long) n * p + generated + streamTokens) / seconds, ttft[n / 2]);
  }

  /** Nearest-rank percentile of sorted {@code values}. */
  private static double percentile(List<Double> values, double q) {
    return values.get(Math.min(values.size() - 1, (int) Math.ceil(q * values.size()) - 1));
  }

  /** A streamed request that records the arrival time of every chunk with text, until it ends or {@code stop}. */
  private static void stream(HttpClient http, String url, int[] prompt, int maxTokens, List<Long> arrivals,
      AtomicBoolean stop) throws Exception {
    HttpResponse<java.io.InputStream> response = http.send(completion(url, prompt, maxTokens), HttpResponse.BodyHandlers.ofInputStream());
    if (response.statusCode() != 200) {
      throw new IllegalStateException(url + " answered " + response.statusCode() + ": " + new String(response.body().readAllBytes(), StandardCharsets.UTF_8));
    }
    try (BufferedReader reader = new BufferedReader(new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
      String line;
      while (!stop.get() && (line = reader.readLine()) != null) {
        if (!line.startsWith("data: ") || line.equals("data: [DONE]")) continue;
        JsonNode choices = JSON.readTree(line.substring(6)).path("choices");
        if (choices.isArray() && !choices.isEmpty() && !choices.get(0).path("text").asText("").isEmpty()) arrivals.add(System.nanoTime());
      }
    } // closing the body mid-stream disconnects: both servers end the request
  }

  /** A streamed, greedy {@code /v1/completions} request for raw token ids, EOS ignored, no prompt caching. */
  private static HttpRequest completion(String url, int[] prompt, int maxTokens) {
    ObjectNode body = JSON.createObjectNode().put("max_tokens", maxTokens).put("temperature", 0).put("ignore_eos", true)
        .put("stream", true).put("cache_prompt", false);
    body.putObject("stream_options").put("include_usage", true);
    var ids = body.putArray("prompt");
    for (int id : prompt) ids.add(id);
    return HttpRequest.newBuilder(URI.create(url + "/v1/completions"))
        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build();
  }

  /** BOS, then {@code length − 1} ids in [300, 30300), varied by {@code seed}. */
  private static int[] prompt(int length, int seed) {
    int[] ids = new int[length];
    ids[0] = 1;
    for (int j = 1; j < length; j++) ids[j] = 300 + Math.floorMod(seed + j * 7, 30000);
    return ids;
  }

  /** One streamed request: tokens received (from the usage, else counted chunks) and time to the first. */
  private static Result one(HttpClient http, String url, int[] prompt, int maxTokens) throws Exception {
    long start = System.nanoTime();
    HttpResponse<java.io.InputStream> response = http.send(completion(url, prompt, maxTokens), HttpResponse.BodyHandlers.ofInputStream());
    if (response.statusCode() != 200) {
      throw new IllegalStateException(url + " answered " + response.statusCode() + ": " + new String(response.body().readAllBytes(), StandardCharsets.UTF_8));
    }
    long ttft = -1;
    int chunks = 0;
    int usage = -1;
    try (BufferedReader reader = new BufferedReader(new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = reader.readLine()) != null) {
        if (!line.startsWith("data: ") || line.equals("data: [DONE]")) continue;
        JsonNode event = JSON.readTree(line.substring(6));
        if (event.path("usage").path("completion_tokens").isNumber()) usage = event.path("usage").path("completion_tokens").asInt();
        JsonNode choices = event.path("choices");
        if (choices.isArray() && !choices.isEmpty() && !choices.get(0).path("text").asText("").isEmpty()) {
          if (ttft < 0) ttft = (System.nanoTime() - start) / 1_000_000;
          chunks++;
        }
      }
    }
    return new Result(usage >= 0 ? usage : chunks, ttft);
  }
}
