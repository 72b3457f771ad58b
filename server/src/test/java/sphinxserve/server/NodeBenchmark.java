package sphinxserve.server;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import sphinxserve.api.EngineRequest;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.scheduler.Engine;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.generate.PromptRenderer;
import sphinxserve.server.testing.TestImages;

/**
 * The node benchmark ({@code bin/bench-node}), over the {@code bench} bundle (SPHINX's token geometry: 1,455
 * image tokens) on the CPU:
 * <ol>
 *   <li>TTFT through the node over loopback gRPC for a new image (decode, five views, vision encoder, full
 *       prefill), the same image again with a new question (encoder skipped; the image span also comes from
 *       the prefix cache), and a follow-up turn on it (encoder and the cached conversation prefix skipped);
 *       medians of {@code --ttft-runs} distinct images, reported with their ratios to the new-image TTFT.
 *   <li>Streaming throughput: one closed batch of {@code --requests} text prompts ({@code --max-tokens}
 *       each, ignore EOS), all at once, served by the engine driven in process (a sink that only counts
 *       tokens, on the engine thread) and through the node over loopback gRPC, alternating
 *       {@code --rounds} times on the same model; each run gets a fresh KV manager and prompts nobody has
 *       seen, so the prefix cache never helps. The prompt token ids are identical in both modes (the node's
 *       {@link PromptRenderer} renders them).
 * </ol>
 *
 *   <li>Inter-token latency while images are encoded ({@link EncodingInterference}): the vision encoder and the
 *       decoder at once against taking turns on the cores.
 * </ol>
 *
 * <p>Run: {@code bin/bench-node [--requests 32] [--max-tokens 64] [--rounds 2] [--ttft-runs 3] [--streams 8]
 * [--images 6] [--sections throughput,ttft,itl] [--bundle DIR]}.
 */
public final class NodeBenchmark {

  private NodeBenchmark() {}

  /** Runs {@link #run} on a large-stack thread (as {@link SphinxNode#main} opens the model; see there why). */
  public static void main(String[] args) throws Exception {
    Throwable[] failed = new Throwable[1];
    Thread runner = new Thread(null, () -> {
      try {
        run(args);
      } catch (Throwable t) {
        failed[0] = t;
      }
    }, "bench-node", 64L << 20);
    runner.start();
    runner.join();
    if (failed[0] instanceof Exception e) throw e;
    if (failed[0] != null) throw new IllegalStateException(failed[0]);
  }

  private static void run(String[] args) throws Exception {
    int numRequests = 32;
    int maxTokens = 64;
    int rounds = 2;
    int ttftRuns = 3;
    Path dir = Path.of(".bench/bundles/bench");
    java.util.Set<String> sections = java.util.Set.of("throughput", "ttft", "itl");
    int numStreams = 8;
    int numImages = 6;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--requests" -> numRequests = Integer.parseInt(args[++i]);
        case "--max-tokens" -> maxTokens = Integer.parseInt(args[++i]);
        case "--rounds" -> rounds = Integer.parseInt(args[++i]);
        case "--ttft-runs" -> ttftRuns = Integer.parseInt(args[++i]);
        case "--bundle" -> dir = Path.of(args[++i]);
        case "--sections" -> sections = java.util.Set.of(args[++i].split(","));
        case "--streams" -> numStreams = Integer.parseInt(args[++i]);
        case "--images" -> numImages = Integer.parseInt(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (!Files.exists(dir.resolve("bundle.json"))) {
      System.out.println("building the bench bundle into " + dir + " ...");
      BundleBuilder.build(BundlePreset.BENCH, 1, dir);
    }
    Bundle bundle = Bundle.open(dir);
    int numBlocks = 2048;
    System.out.printf(Locale.ROOT, "machine: %d cores, %s %s, Java %s; bundle %s (%d image tokens), KV %d blocks × 16%n",
        Runtime.getRuntime().availableProcessors(), System.getProperty("os.name"), System.getProperty("os.arch"),
        System.getProperty("java.version"), bundle.spec().bundleId(), bundle.spec().vision().tokensPerImage(), numBlocks);
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--max-running-requests=64", "--max-waiting-requests=1024",
        "--kv-blocks=" + numBlocks, "--drain-seconds=5"}, Map.of());
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage)) {
      PromptRenderer renderer = new PromptRenderer(runtime.spec(), runtime.tokenizer());

      // Warm-up: a small batch both ways.
      inProcess(runtime, storage, config, prompts(renderer, 4, 999), 8);
      overGrpc(runtime, storage, config, bundle, prompts(renderer, 4, 998), 8);
      if (sections.contains("throughput")) throughput(runtime, storage, config, bundle, renderer, numRequests, maxTokens, rounds);
      if (sections.contains("ttft")) ttft(runtime, storage, config, bundle, ttftRuns);
    }
    if (sections.contains("itl")) EncodingInterference.run(bundle, numStreams, numImages, rounds);
  }

  private static void throughput(OnnxModelRuntime runtime, KvCacheStorage storage, NodeConfig config, Bundle bundle,
      PromptRenderer renderer, int numRequests, int maxTokens, int rounds) throws InterruptedException {
    {

      System.out.printf(Locale.ROOT, "%nthroughput: %d requests at once, %d output tokens each%n", numRequests, maxTokens);
      double[] inProc = new double[rounds];
      double[] grpc = new double[rounds];
      for (int r = 0; r < rounds; r++) {
        inProc[r] = inProcess(runtime, storage, config, prompts(renderer, numRequests, 2 * r), maxTokens);
        grpc[r] = overGrpc(runtime, storage, config, bundle, prompts(renderer, numRequests, 2 * r + 1), maxTokens);
        System.out.printf(Locale.ROOT, "  round %d: engine in process %.1f tok/s, gRPC over loopback %.1f tok/s (%.1f%%)%n",
            r + 1, inProc[r], grpc[r], 100 * (grpc[r] / inProc[r] - 1));
      }
      double in = median(inProc);
      double over = median(grpc);
      System.out.printf(Locale.ROOT, "  median: in process %.1f tok/s, gRPC %.1f tok/s: %.1f%% %s%n", in, over,
          100 * Math.abs(1 - over / in), over <= in ? "loss" : "gain");
    }
  }

  /** Distinct prompts (token ids and the request that renders to them), 24–48 words each. */
  private record Prompt(GenerateRequest.Builder request, int[] tokenIds) {}

  private static final String[] WORDS = {"circle", "person", "red", "left", "dog", "table", "window", "above", "small",
      "green", "the", "of", "near", "count", "bright", "corner", "behind", "street", "two", "large"};

  private static List<Prompt> prompts(PromptRenderer renderer, int n, long seed) {
    SplittableRandom random = new SplittableRandom(seed * 7919 + 17);
    List<Prompt> prompts = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      StringBuilder text = new StringBuilder("Question " + seed + "-" + i + ":");
      for (int w = 24 + random.nextInt(25); w > 0; w--) text.append(' ').append(WORDS[random.nextInt(WORDS.length)]);
      Message user = Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText(text.toString())).build();
      prompts.add(new Prompt(GenerateRequest.newBuilder().setRequestId("bench-" + seed + "-" + i).addMessages(user),
          renderer.render(List.of(user), false)));
    }
    return prompts;
  }

  /** Output tokens per second of the engine driven directly, each request's output counted as it comes. */
  private static double inProcess(OnnxModelRuntime runtime, KvCacheStorage storage, NodeConfig config, List<Prompt> prompts, int maxTokens)
      throws InterruptedException {
    CountDownLatch done = new CountDownLatch(prompts.size());
    AtomicLong numTokens = new AtomicLong();
    sphinxserve.api.SamplingParams sampling = EngineBackend.toEngine(samplingOf(maxTokens), maxTokens);
    // The cheapest possible consumer, on the engine thread itself: the node's cost over it is what is measured.
    sphinxserve.api.TokenSink counter = new sphinxserve.api.TokenSink() {
      @Override
      public void onTokens(String text, int[] tokenIds, List<sphinxserve.api.TokenLogprob> logprobs) {
        numTokens.addAndGet(tokenIds.length);
      }

      @Override
      public void onFinish(sphinxserve.api.FinishReason reason, sphinxserve.api.Usage usage, String message) {
        done.countDown();
      }
    };
    try (Engine engine = new Engine(runtime, new KvCacheManager(storage), config.engineConfig()).start()) {
      long start = System.nanoTime();
      for (Prompt p : prompts) {
        Engine.Admission a = engine.submit(new EngineRequest(p.request().getRequestId(), p.tokenIds(), null, 0, sampling, 0, Long.MAX_VALUE, null, counter));
        if (!(a instanceof Engine.Admission.Accepted)) throw new IllegalStateException("refused: " + a);
      }
      if (!done.await(30, TimeUnit.MINUTES)) throw new IllegalStateException("in-process run did not finish");
      return numTokens.get() / ((System.nanoTime() - start) / 1e9);
    }
  }

  /** Output tokens per second of the same kind of batch through a node over loopback gRPC. */
  private static double overGrpc(OnnxModelRuntime runtime, KvCacheStorage storage, NodeConfig config, Bundle bundle, List<Prompt> prompts,
      int maxTokens) throws InterruptedException {
    SphinxNode node = SphinxNode.start(config, bundle, runtime, new EngineBackend(runtime, storage, config));
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
    try {
      CountDownLatch done = new CountDownLatch(prompts.size());
      AtomicLong numTokens = new AtomicLong();
      List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
      SphinxGrpc.SphinxStub stub = SphinxGrpc.newStub(channel);
      long start = System.nanoTime();
      for (Prompt p : prompts) {
        stub.generate(p.request().setSampling(samplingOf(maxTokens)).build(), new StreamObserver<>() {
          @Override
          public void onNext(GenerateResponse r) {
            numTokens.addAndGet(r.getTokenIdsCount());
          }

          @Override
          public void onError(Throwable t) {
            errors.add(t);
            done.countDown();
          }

          @Override
          public void onCompleted() {
            done.countDown();
          }
        });
      }
      if (!done.await(30, TimeUnit.MINUTES)) throw new IllegalStateException("gRPC run did not finish");
      if (!errors.isEmpty()) throw new IllegalStateException("gRPC run failed", errors.getFirst());
      return numTokens.get() / ((System.nanoTime() - start) / 1e9);
    } finally {
      channel.shutdownNow();
      node.close();
    }
  }

  private static SamplingParams samplingOf(int maxTokens) {
    return SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true).build();
  }

  /** TTFT for a new image, the same image again, and a follow-up turn, through the node. */
  private static void ttft(OnnxModelRuntime runtime, KvCacheStorage storage, NodeConfig config, Bundle bundle, int runs) throws Exception {
    SphinxNode node = SphinxNode.start(config, bundle, runtime, new EngineBackend(runtime, storage, config));
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
    try {
      SphinxGrpc.SphinxBlockingStub stub = SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.MINUTES);
      double[][] seconds = new double[3][runs];
      long[][] cached = new long[3][runs];
      for (int run = 0; run < runs; run++) {
        byte[] image = TestImages.jpeg(TestImages.noise(640, 480, 1000 + run));
        Content bytes = Content.newBuilder().setImage(ByteString.copyFrom(image)).build();
        Message first = user(bytes, "Detect all people in the image.");
        String answer = "";
        Timed fresh = timed(stub, GenerateRequest.newBuilder().addMessages(first).setSampling(samplingOf(16)).build());
        answer = fresh.text;
        Timed again = timed(stub, GenerateRequest.newBuilder().addMessages(user(bytes, "What is in the top left corner?")).setSampling(samplingOf(16)).build());
        Timed followUp = timed(stub, GenerateRequest.newBuilder().addMessages(first)
            .addMessages(Message.newBuilder().setRole(Role.ASSISTANT).addContent(Content.newBuilder().setText(answer)))
            .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("And the dogs?")))
            .setSampling(samplingOf(16)).build());
        Timed[] all = {fresh, again, followUp};
        for (int k = 0; k < 3; k++) {
          seconds[k][run] = all[k].ttftSeconds;
          cached[k][run] = all[k].last.getUsage().getCachedPromptTokens();
        }
        if (!again.last.getUsage().getImageCacheHit() || fresh.last.getUsage().getImageCacheHit()) throw new IllegalStateException("image cache misbehaved");
      }
      String[] names = {"new image", "same image, new question", "follow-up turn"};
      double base = median(seconds[0]);
      System.out.printf(Locale.ROOT, "%nTTFT through the node (640×480 JPEG, client-side, median of %d images):%n", runs);
      for (int k = 0; k < 3; k++) {
        System.out.printf(Locale.ROOT, "  %-26s %8.1f ms  ratio %.3f  (cached prompt tokens %s)%n", names[k], 1e3 * median(seconds[k]),
            median(seconds[k]) / base, Arrays.toString(cached[k]));
      }
    } finally {
      channel.shutdownNow();
      node.close();
    }
  }

  private static Message user(Content image, String text) {
    return Message.newBuilder().setRole(Role.USER).addContent(image).addContent(Content.newBuilder().setText(text)).build();
  }

  private record Timed(double ttftSeconds, String text, GenerateResponse last) {}

  private static Timed timed(SphinxGrpc.SphinxBlockingStub stub, GenerateRequest request) {
    long start = System.nanoTime();
    var stream = stub.generate(request);
    GenerateResponse r = stream.next();
    double ttft = (System.nanoTime() - start) / 1e9;
    StringBuilder text = new StringBuilder(r.getText());
    while (stream.hasNext()) {
      r = stream.next();
      text.append(r.getText());
    }
    return new Timed(ttft, text.toString(), r);
  }

  private static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }
}
