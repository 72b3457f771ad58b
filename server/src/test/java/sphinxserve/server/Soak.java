package sphinxserve.server;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.image.ImageDigest;
import sphinxserve.server.testing.CountingRuntime;
import sphinxserve.server.testing.TestImages;

/**
 * The soak: everything at once against one node over gRPC on the {@code bench} bundle, with faults injected into
 * the runtime, then checks that nothing leaked. Not part of the test run (minutes of CPU); run with
 * {@code bin/soak [--completing 200] [--cancelled 1000] [--bad 100] [--bundle DIR]}; results in docs/OPERATIONS.md.
 *
 * <p>All calls start together: {@code --completing} streams (32 tokens, one in ten with a new image) that must end
 * with their last message, or with INTERNAL when an injected fault hit them; {@code --cancelled} streams cancelled
 * by the client at a random moment in their first three seconds (queued, prefilling or decoding); {@code --bad}
 * requests of five kinds that must be refused with INVALID_ARGUMENT or NOT_FOUND. The runtime throws in 0.2% of
 * steps, sleeps 20 ms in 1%, and returns a NaN row for 0.1% of rows. Every call has a 5-minute deadline: one that
 * hits it hung. The load runs {@code --rounds} times (2 by default, new prompts and images each time). After each
 * round (the node idle): no KV block in use, nothing running or waiting, health SERVING; and after the last, heap
 * and direct memory within 10% of where the first round left them. The first round is the baseline because pools
 * size themselves to the load (Netty's pooled direct buffers, ORT's arenas, the JIT's code); a leak grows round
 * after round. Heap is counted after full GCs with the round's images dropped from the image cache (bounded by
 * {@code --image-cache-bytes} and filled by design; and G1 keeps each bench image's 2.8 MiB of embeddings in two
 * 2 MiB humongous regions, so what the heap shows per image is not what the cache weighs). Exits non-zero when a
 * check fails.
 */
public final class Soak {

  private Soak() {}

  public static void main(String[] args) throws Exception {
    int numCompleting = 200;
    int numCancelled = 1000;
    int numBad = 100;
    int rounds = 2;
    Path dir = Path.of(".bench/bundles/bench");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--completing" -> numCompleting = Integer.parseInt(args[++i]);
        case "--cancelled" -> numCancelled = Integer.parseInt(args[++i]);
        case "--bad" -> numBad = Integer.parseInt(args[++i]);
        case "--rounds" -> rounds = Integer.parseInt(args[++i]);
        case "--bundle" -> dir = Path.of(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (!Files.exists(dir.resolve("bundle.json"))) {
      System.out.println("building the bench bundle into " + dir + " ...");
      BundleBuilder.build(BundlePreset.BENCH, 1, dir);
    }
    // As SphinxNode.main: java.util.logging (gRPC, Netty, Caffeine) into the node's JSON log.
    org.slf4j.bridge.SLF4JBridgeHandler.removeHandlersForRootLogger();
    org.slf4j.bridge.SLF4JBridgeHandler.install();
    int total = numCompleting + numCancelled + numBad;
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--metrics-port=0", "--http-port=0", "--bundle=" + dir,
        "--max-waiting-requests=" + total, "--max-image-jobs=" + total, "--image-timeout=5m", "--drain-seconds=5"}, Map.of());
    AtomicReference<EngineBackend> backend = new AtomicReference<>();
    AtomicReference<CountingRuntime> faulty = new AtomicReference<>();
    SphinxNode[] opened = new SphinxNode[1];
    Thread opener = new Thread(null, () -> opened[0] = SphinxNode.open(config, (runtime, kv, c) -> {
      CountingRuntime wrapped = new CountingRuntime(runtime);
      faulty.set(wrapped);
      backend.set(new EngineBackend(wrapped, kv, c));
      return backend.get();
    }), "soak-open", 64L << 20); // the model opens on a large stack, as SphinxNode.main does
    opener.start();
    opener.join();
    SphinxNode node = opened[0];
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext()
        .maxInboundMessageSize(64 << 20).build();
    ScheduledExecutorService timers = Executors.newScheduledThreadPool(2);
    int exit = 0;
    try {
      SphinxGrpc.SphinxStub stub = SphinxGrpc.newStub(channel);
      // Warm-up (JIT, ORT's first runs, the image path), then the baseline.
      for (int i = 0; i < 4; i++) call(stub, request(i, i == 0 ? image(-1) : null, 16), null, timers).get(5, TimeUnit.MINUTES);
      System.out.printf(Locale.ROOT, "soak: %d rounds of %d completing + %d cancelled + %d bad requests at once; bundle %s; %d cores%n",
          rounds, numCompleting, numCancelled, numBad, dir, Runtime.getRuntime().availableProcessors());
      node.images().invalidate(ImageDigest.of(imageBytes(-1)));
      System.out.println("  after warm-up  " + Memory.now());
      List<String> failures = new ArrayList<>();
      Memory baseline = null;
      for (int round = 1; round <= rounds; round++) {
        failures.addAll(round(round, stub, channel, node, backend.get(), faulty.get(), timers, numCompleting, numCancelled, numBad));
        Memory memory = Memory.now();
        System.out.println("  after round " + round + "  " + memory);
        if (baseline == null) {
          baseline = memory;
        } else if (round == rounds) {
          if (memory.heapBytes > 1.10 * baseline.heapBytes) failures.add("heap grew more than 10% since round 1");
          if (memory.directBytes > 1.10 * baseline.directBytes) failures.add("direct memory grew more than 10% since round 1");
        }
      }
      System.out.println(failures.isEmpty() ? "  PASS" : "  FAIL: " + String.join("; ", failures));
      exit = failures.isEmpty() ? 0 : 1;
    } finally {
      timers.shutdownNow();
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      node.close();
    }
    System.exit(exit);
  }

  /** One round of the load, with faults injected while it runs; returns what failed. */
  private static List<String> round(int round, SphinxGrpc.SphinxStub stub, ManagedChannel channel, SphinxNode node, EngineBackend backend,
      CountingRuntime faulty, ScheduledExecutorService timers, int numCompleting, int numCancelled, int numBad) throws Exception {
    int total = numCompleting + numCancelled + numBad;
    int ids = round * 100_000; // new prompts and images every round
    SplittableRandom faults = new SplittableRandom(7 + round);
    faulty.beforeStep(() -> {
      double u = faults.nextDouble();
      if (u < 0.002) throw new IllegalStateException("soak: injected step failure");
      if (u < 0.012) sleep(20);
    });
    faulty.rewriteRows((step, row) -> {
      if (faults.nextDouble() < 0.001) row[7] = Float.NaN;
    });

    SplittableRandom random = new SplittableRandom(11 + round);
    List<CompletableFuture<Outcome>> completing = new ArrayList<>();
    List<CompletableFuture<Outcome>> cancelled = new ArrayList<>();
    List<CompletableFuture<Outcome>> bad = new ArrayList<>();
    long start = System.nanoTime();
    int c = 0;
    int k = 0;
    int b = 0;
    while (c < numCompleting || k < numCancelled || b < numBad) { // interleaved at random, all at once
      double u = random.nextDouble() * total;
      if (u < numCompleting && c < numCompleting) {
        int id = ids + c++;
        completing.add(call(stub, request(id, id % 10 == 0 ? image(id) : null, 32), null, timers));
      } else if (u < numCompleting + numCancelled && k < numCancelled) {
        int id = ids + 50_000 + k++;
        cancelled.add(call(stub, request(id, id % 10 == 0 ? image(id) : null, 256), random.nextLong(3000), timers));
      } else if (b < numBad) {
        bad.add(call(stub, badRequest(ids + 90_000 + b++), null, timers));
      }
    }
    List<CompletableFuture<Outcome>> all = new ArrayList<>(completing);
    all.addAll(cancelled);
    all.addAll(bad);
    CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(6, TimeUnit.MINUTES);
    double seconds = (System.nanoTime() - start) / 1e9;
    faulty.beforeStep(() -> {});
    faulty.rewriteRows(null);

    Map<String, Integer> completingEnds = tally(completing);
    Map<String, Integer> cancelledEnds = tally(cancelled);
    Map<String, Integer> badEnds = tally(bad);
    System.out.printf(Locale.ROOT, "round %d: all %d calls ended in %.1f s%n", round, total, seconds);
    System.out.println("  completing: " + completingEnds);
    System.out.println("  cancelled:  " + cancelledEnds);
    System.out.println("  bad:        " + badEnds);

    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (System.nanoTime() < until && (backend.kvStats().numInUseBlocks() > 0
        || backend.stats().numRunning() + backend.stats().numWaiting() > 0)) {
      Thread.sleep(10);
    }
    int blocks = backend.kvStats().numInUseBlocks();
    int live = backend.stats().numRunning() + backend.stats().numWaiting();
    String health = HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.newBuilder().setService(SphinxGrpc.SERVICE_NAME).build())
        .getStatus().name();
    System.out.printf(Locale.ROOT, "  KV blocks in use %d, requests running or waiting %d, health %s%n", blocks, live, health);

    List<String> failures = new ArrayList<>();
    // A completing stream ends with its last message, or INTERNAL when an injected fault hit it.
    completingEnds.keySet().stream().filter(end -> !end.startsWith("OK/") && !end.equals("INTERNAL"))
        .forEach(end -> failures.add("round " + round + ": a completing stream ended " + end));
    // A cancelled one ends CANCELLED, or as above when it finished or failed before its cancel came.
    cancelledEnds.keySet().stream().filter(end -> !end.equals("CANCELLED") && !end.startsWith("OK/") && !end.equals("INTERNAL"))
        .forEach(end -> failures.add("round " + round + ": a cancelled stream ended " + end));
    badEnds.keySet().stream().filter(end -> !end.equals("INVALID_ARGUMENT") && !end.equals("NOT_FOUND"))
        .forEach(end -> failures.add("round " + round + ": a bad request ended " + end));
    if (blocks != 0) failures.add("round " + round + ": " + blocks + " KV blocks still in use");
    if (live != 0) failures.add("round " + round + ": " + live + " requests still in the engine");
    if (!health.equals("SERVING")) failures.add("round " + round + ": health " + health);
    // Every image sent this round (one prompt in ten), out of the image cache before memory is read.
    for (int id = ids; id < ids + numCompleting; id += 10) node.images().invalidate(ImageDigest.of(imageBytes(id)));
    for (int id = ids + 50_000; id < ids + 50_000 + numCancelled; id += 10) node.images().invalidate(ImageDigest.of(imageBytes(id)));
    return failures;
  }

  /** How a call ended: the status code, and the finish reason when it was OK. */
  private record Outcome(String end) {}

  /**
   * Starts a Generate call; with {@code cancelAfterMillis}, the client cancels it then. The future completes when
   * the call has ended, however it ended.
   */
  private static CompletableFuture<Outcome> call(SphinxGrpc.SphinxStub stub, GenerateRequest request, Long cancelAfterMillis,
      ScheduledExecutorService timers) {
    CompletableFuture<Outcome> outcome = new CompletableFuture<>();
    AtomicReference<ClientCallStreamObserver<GenerateRequest>> started = new AtomicReference<>();
    stub.withDeadlineAfter(5, TimeUnit.MINUTES).generate(request, new ClientResponseObserver<GenerateRequest, GenerateResponse>() {
      private volatile FinishReason finish = FinishReason.FINISH_REASON_UNSPECIFIED;

      @Override
      public void beforeStart(ClientCallStreamObserver<GenerateRequest> call) {
        started.set(call);
      }

      @Override
      public void onNext(GenerateResponse response) {
        if (response.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) finish = response.getFinishReason();
      }

      @Override
      public void onError(Throwable t) {
        outcome.complete(new Outcome(Status.fromThrowable(t).getCode().name()));
      }

      @Override
      public void onCompleted() {
        outcome.complete(new Outcome("OK/" + finish.name()));
      }
    });
    if (cancelAfterMillis != null) { // only once started: gRPC refuses to start a call cancelled in beforeStart
      timers.schedule(() -> started.get().cancel("soak: the client goes away", null), cancelAfterMillis, TimeUnit.MILLISECONDS);
    }
    return outcome;
  }

  private static GenerateRequest request(int i, Content image, int maxTokens) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(image);
    user.addContent(Content.newBuilder().setText("Question " + i + ": what is in the picture, and where?"));
    return GenerateRequest.newBuilder().setRequestId("soak-" + i).addMessages(user)
        .setSampling(SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true).setTemperature(0.7f).setSeed(i)).build();
  }

  private static Content image(int i) {
    return Content.newBuilder().setImage(ByteString.copyFrom(imageBytes(i))).build();
  }

  private static byte[] imageBytes(int i) {
    return TestImages.png(TestImages.noise(96, 64, 5000L + i));
  }

  /** Five kinds of wrong request, in turn: each is the client's fault. */
  private static GenerateRequest badRequest(int i) {
    GenerateRequest valid = request(20_000 + i, null, 8);
    return switch (i % 5) {
      case 0 -> valid.toBuilder().setSampling(valid.getSampling().toBuilder().setTopP(2f)).build();
      case 1 -> valid.toBuilder().clearMessages().build();
      case 2 -> valid.toBuilder().setMessages(0, valid.getMessages(0).toBuilder()
          .addContent(0, Content.newBuilder().setImageDigest("ab".repeat(32)))).build();
      case 3 -> valid.toBuilder().setMessages(0, valid.getMessages(0).toBuilder()
          .addContent(0, Content.newBuilder().setImage(ByteString.copyFromUtf8("not an image")))).build();
      default -> valid.toBuilder().setSampling(valid.getSampling().toBuilder().setMaxTokens(1 << 30)).build();
    };
  }

  private static Map<String, Integer> tally(List<CompletableFuture<Outcome>> calls) {
    Map<String, Integer> counts = new TreeMap<>();
    for (CompletableFuture<Outcome> call : calls) counts.merge(call.join().end(), 1, Integer::sum);
    return counts;
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Heap in use after full GCs, and direct buffer memory: what a leak would grow. */
  private record Memory(long heapBytes, long directBytes) {
    static Memory now() throws InterruptedException {
      for (int i = 0; i < 3; i++) {
        System.gc();
        Thread.sleep(200);
      }
      long heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
      long direct = ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
          .filter(p -> p.getName().equals("direct")).mapToLong(BufferPoolMXBean::getMemoryUsed).sum();
      return new Memory(heap, direct);
    }

    @Override
    public String toString() {
      return String.format(Locale.ROOT, "heap after GC %.1f MiB, direct buffers %.1f MiB", heapBytes / 1048576.0, directBytes / 1048576.0);
    }
  }
}
