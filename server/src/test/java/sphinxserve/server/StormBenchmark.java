package sphinxserve.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.ModelMemory;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;
import sphinxserve.server.config.KvPoolSizing;
import sphinxserve.server.config.NodeConfig;

/**
 * The worst-request storm (issue 26, "Bounded memory per request"): a node in a process of its own, an ordinary
 * greedy stream measured idle and then while the worst requests one can write hit the same node, and the node's
 * resident memory throughout. Not part of the test run; {@code bin/bench-storm [--random-model | --model DIR | --bundle DIR
 * [--preset bench]] [--seconds 60] [--heap 2g] [--kv-blocks 1024] [--bombs 4] [--budget-bombs N] [--bodies 4] [--prompts 4] [--half-open 500]
 * [--tokens 64] [--max-rss 8g] [--attacker-priority idle] [--warmup-seconds 20] [--node-flag --name=value]...}; results in
 * docs/OPERATIONS.md. The attackers run in a process of their own ({@link Attackers}) under Linux's
 * {@code SCHED_IDLE} policy ({@code chrt --idle}: they run only on CPU the node leaves, as on other hosts) unless
 * {@code --attacker-priority N} runs them at nice N (0: as the node's equals); a first storm of {@code --warmup-seconds} lets the JIT compile the attacks'
 * code paths before the idle and storm measurements.
 *
 * <p>What the node serves: a Hugging Face LLaMA folder ({@code --model DIR}, passed to the node as its own flag, so
 * its Jinja chat template renders every prompt in the template sandbox), {@code --random-model} (such a folder of
 * random weights written once into {@code .bench/models/storm-llama3}: the {@code bench} preset's shape, 55 M
 * parameters in bfloat16, and {@link #STORM_TEMPLATE}), or a SPHINX bundle ({@code --bundle}, the default), whose
 * fixed template never runs Jinja.
 *
 * <p>The attackers, each a loop of its own until the storm ends (every answer's status is counted with the budget or
 * limit its error names, whatever it is, so the bench runs against any version of the node): <b>template bombs</b>
 * (issue 26's chat message that, rendered as a Jinja template, would loop 10⁹ times: message content is data, so the
 * node must answer it as the literal text it is), <b>budget bombs</b> (a three-message conversation, which makes
 * {@link #STORM_TEMPLATE} itself run that loop: every one spends a whole render budget before its 400),
 * <b>maximum bodies</b> (a chat request of exactly {@code --max-message-bytes},
 * the HTTP body limit), <b>maximum prompts</b> (the longest chat prompt the node accepts, found before the storm by
 * halving from {@code --max-prompt-chars}; each request its own random words, so none is a prefix-cache hit), and <b>half-open connections</b> (a request head promising a body that
 * never comes, held open; how many the node has closed by the end is reported). The ordinary stream is gRPC
 * {@code Generate}, greedy, EOS ignored; its inter-token latency is the gap between consecutive token messages.
 *
 * <p>Resident memory is {@code VmRSS} of the node's process, sampled every 50 ms; the margin is its peak minus
 * (heap max + KV pool + model memory, {@link OnnxModelRuntime#modelMemory}). A watchdog kills the node when VmRSS
 * passes {@code --max-rss}, so an unguarded template bomb cannot take the machine down with it (the bench then
 * reports that). Sizes from the node's defaults unless given: {@code --max-message-bytes} 16 MiB,
 * {@code --max-prompt-chars} 65,536.
 */
public final class StormBenchmark {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** The issue's template bomb: 1,000³ iterations if rendered. */
  static final String TEMPLATE_BOMB = "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}x"
      + "{% endfor %}{% endfor %}{% endfor %}";

  /**
   * The {@code --random-model} folder's chat template: LLaMA-3's, preceded by the bomb for conversations of more than two
   * messages. It stands for a model folder whose template an attacker can make loop without end (or for as long as
   * its budgets allow); one-message conversations, the ordinary stream's, render exactly as LLaMA-3's template.
   */
  static final String STORM_TEMPLATE = "{% if messages | length > 2 %}" + TEMPLATE_BOMB + "{% endif %}"
      + RandomCheckpoints.LLAMA3_CHAT_TEMPLATE;

  /** Where {@code --random-model} writes its folder, and where bundles of model folders are built. */
  private static final Path RANDOM_MODEL = Path.of(".bench/models/storm-llama3");
  private static final Path BUNDLE_CACHE = Path.of(".bench/bundle-cache");

  /** Node flags whose names appear in refusals: an answer is counted under the one its error message names. */
  private static final java.util.regex.Pattern NAMED_LIMIT = java.util.regex.Pattern.compile(
      "\\((max-[a-z-]+|template-[a-z-]+|a fixed depth of \\d+)\\)|(model's context)");

  private StormBenchmark() {}

  /** The bench's settings; {@code model} null: the node serves {@code bundle}. */
  private record Settings(Path bundle, Path model, int seconds, String heap, int kvBlocks, int bombs, int budgetBombs, int bodies, int prompts,
      int halfOpen, int tokens, long maxRssBytes, int maxBodyBytes, int maxPromptChars, List<String> nodeFlags,
      List<String> jvmFlags, String attackerPriority, int warmupSeconds) {}

  public static void main(String[] args) throws Exception {
    Path bundleDir = Path.of(".bench/bundles/bench");
    Path model = null;
    boolean randomModel = false;
    List<String> nodeFlags = new ArrayList<>();
    List<String> jvmFlags = new ArrayList<>();
    BundlePreset preset = BundlePreset.BENCH;
    int seconds = 60;
    String heap = "2g";
    int kvBlocks = 1024;
    int bombs = 4;
    int budgetBombs = -1; // as many as --bombs unless given
    int bodies = 4;
    int prompts = 4;
    int halfOpen = 500;
    int tokens = 64;
    long maxRss = 8L << 30;
    String attackerPriority = "idle";
    int warmupSeconds = 20;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--bundle" -> bundleDir = Path.of(args[++i]);
        case "--model" -> model = Path.of(args[++i]);
        case "--random-model" -> randomModel = true;
        case "--node-flag" -> nodeFlags.add(args[++i]); // e.g. --node-flag --max-itl-ms=30: a flag the node starts with
        case "--node-jvm-flag" -> jvmFlags.add(args[++i]); // e.g. --node-jvm-flag -Xlog:gc:target/storm-gc.log
        case "--preset" -> preset = BundlePreset.valueOf(args[++i].toUpperCase(Locale.ROOT)); // built into --bundle when missing
        case "--seconds" -> seconds = Integer.parseInt(args[++i]);
        case "--heap" -> heap = args[++i];
        case "--kv-blocks" -> kvBlocks = Integer.parseInt(args[++i]);
        case "--bombs" -> bombs = Integer.parseInt(args[++i]);
        case "--budget-bombs" -> budgetBombs = Integer.parseInt(args[++i]);
        case "--bodies" -> bodies = Integer.parseInt(args[++i]);
        case "--prompts" -> prompts = Integer.parseInt(args[++i]);
        case "--half-open" -> halfOpen = Integer.parseInt(args[++i]);
        case "--tokens" -> tokens = Integer.parseInt(args[++i]);
        case "--max-rss" -> maxRss = bytes(args[++i]);
        case "--attacker-priority" -> attackerPriority = args[++i]; // idle (SCHED_IDLE), or a nice value: 0 competes as an equal
        case "--warmup-seconds" -> warmupSeconds = Integer.parseInt(args[++i]); // a storm before the measurements, for the JIT
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (model == null && randomModel) model = writeRandomModel(RANDOM_MODEL);
    if (model != null) {
      bundleDir = modelBundle(model);
    } else if (!Files.exists(bundleDir.resolve("bundle.json"))) {
      System.out.println("building the " + preset.name().toLowerCase(Locale.ROOT) + " bundle into " + bundleDir + " ...");
      BundleBuilder.build(preset, 1, bundleDir);
    }
    Settings settings = new Settings(bundleDir, model, seconds, heap, kvBlocks, bombs, budgetBombs < 0 ? bombs : budgetBombs, bodies, prompts, halfOpen, tokens, maxRss,
        16 << 20, 65536, List.copyOf(nodeFlags), List.copyOf(jvmFlags), attackerPriority, warmupSeconds);
    run(settings);
  }

  /**
   * A Hugging Face LLaMA folder of random weights in {@code dir}, written unless there: the {@code bench} preset's
   * decoder shape (vocabulary 32,000, hidden 512, 8 layers, 8 heads over 2 KV heads, FFN 1,408, 4,096 positions) in
   * bfloat16, LLaMA-3's special tokens and {@link #STORM_TEMPLATE}. Written beside {@code dir} and renamed into place.
   */
  private static Path writeRandomModel(Path dir) throws IOException {
    if (Files.isRegularFile(dir.resolve("config.json"))) return dir;
    System.out.println("writing a random LLaMA folder into " + dir + " ...");
    Files.createDirectories(dir.getParent());
    Path tmp = Files.createTempDirectory(dir.getParent(), dir.getFileName() + ".tmp-");
    RandomCheckpoints.builder().vocabSize(32000).hiddenSize(512).numLayers(8).numHeads(8).numKvHeads(2).intermediateSize(1408)
        .maxPositionEmbeddings(4096).ropeTheta(500_000).dtype(sphinxserve.runtime.testing.checkpoints.RawSafetensors.Dtype.BF16)
        .llama3Chat().chatTemplate(STORM_TEMPLATE).seed(26).build().writeHf(tmp);
    Files.move(tmp, dir, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    return dir;
  }

  /**
   * The bundle the node builds of the folder {@code model} with default flags (same cache, same key), built here
   * first, on a thread with a large stack as the node's opener, so the bench can size the model before the node starts.
   */
  private static Path modelBundle(Path model) throws InterruptedException {
    NodeConfig config = NodeConfig.parse(new String[] {"--model", model.toAbsolutePath().toString(),
        "--bundle-cache", BUNDLE_CACHE.toAbsolutePath().toString()}, Map.of());
    Path[] built = new Path[1];
    RuntimeException[] failed = new RuntimeException[1];
    Thread builder = new Thread(null, () -> {
      try {
        built[0] = EmbeddedBundles.resolve(config);
      } catch (RuntimeException e) {
        failed[0] = e;
      }
    }, "storm-bundle", 256L << 20);
    builder.start();
    builder.join();
    if (failed[0] != null) throw failed[0];
    return built[0];
  }

  private static void run(Settings s) throws Exception {
    Bundle bundle = Bundle.open(s.bundle());
    ModelMemory model = OnnxModelRuntime.modelMemory(bundle, RuntimeOptions.cpu());
    long kvBytes = OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, s.kvBlocks()).totalBytes();
    long heapMax = bytes(s.heap());
    int grpcPort = freePort();
    int httpPort = freePort();
    Path log = Path.of("target/storm-node.log").toAbsolutePath();
    Files.createDirectories(log.getParent());
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "--add-modules", "jdk.incubator.vector",
        "-Xmx" + s.heap()));
    command.addAll(s.jvmFlags());
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), SphinxNode.class.getName(),
        s.model() == null ? "--bundle=" + s.bundle().toAbsolutePath() : "--model=" + s.model().toAbsolutePath(),
        "--bundle-cache=" + BUNDLE_CACHE.toAbsolutePath(), "--port=" + grpcPort, "--http-port=" + httpPort, "--metrics-port=0",
        "--kv-blocks=" + s.kvBlocks(), "--drain-seconds=1"));
    command.addAll(s.nodeFlags());
    Process node = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    Thread killer = new Thread(node::destroyForcibly);
    Runtime.getRuntime().addShutdownHook(killer);
    ResidentMemory rss = new ResidentMemory(node, s.maxRssBytes());
    HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", grpcPort).usePlaintext().build();
    String base = "http://127.0.0.1:" + httpPort;
    List<Process> attackerProcesses = new ArrayList<>(); // ended with the node, however the bench ends
    try {
      awaitListening(http, base, node, log);
      rss.start();
      SphinxGrpc.SphinxBlockingStub stub = SphinxGrpc.newBlockingStub(channel);
      String modelName = JSON.readTree(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).build(),
          HttpResponse.BodyHandlers.ofString()).body()).path("data").path(0).path("id").asText();
      System.out.printf(Locale.ROOT, "storm: %s; node heap max %s, KV pool %s (%d blocks), model %s (%s); %d cores; node flags %s; node log %s%n",
          s.model() == null ? "bundle " + s.bundle() : "--model " + s.model() + " (chat template: " + bundle.spec().template().isJinja()
              + " Jinja)", KvPoolSizing.bytes(heapMax), KvPoolSizing.bytes(kvBytes), s.kvBlocks(), KvPoolSizing.bytes(model.totalBytes()),
          model, Runtime.getRuntime().availableProcessors(), command.subList(command.indexOf(SphinxNode.class.getName()) + 1, command.size()), log);

      for (int i = 0; i < 2; i++) gaps(stub, s.tokens(), i); // warm-up: JIT, ORT's first runs
      int promptChars = s.prompts() == 0 ? 0 : longestAcceptedPrompt(http, base, modelName, s.maxPromptChars());
      if (s.warmupSeconds() > 0) { // the attacks' code paths compiled by the JIT before anything is measured
        Process warmup = startAttackers(s, base, httpPort, modelName, promptChars, s.warmupSeconds(), Path.of("target/storm-warmup.log").toAbsolutePath());
        attackerProcesses.add(warmup);
        warmup.getInputStream().transferTo(OutputStream.nullOutputStream());
        if (!warmup.waitFor(3, TimeUnit.MINUTES)) warmup.destroyForcibly();
        Thread.sleep(2000); // its connections (closed with its process) and last requests settle
      }
      long idleRss = rss.current();
      List<Double> idle = new ArrayList<>();
      for (int i = 0; i < 16; i++) idle.addAll(gaps(stub, s.tokens(), 100 + i)); // ~1,000 gaps: a p99 of a few is noise
      System.out.printf(Locale.ROOT, "idle:  VmRSS %s; ordinary stream ITL p50 %.1f ms, p99 %.1f ms (%d gaps; p90 %.1f, p95 %.1f, max %.1f)%n",
          KvPoolSizing.bytes(idleRss), percentile(idle, 50), percentile(idle, 99), idle.size(), percentile(idle, 90), percentile(idle, 95),
          percentile(idle, 100));

      rss.resetPeak();
      Map<String, Map<String, AtomicLong>> outcomes = new ConcurrentHashMap<>();
      Path attackLog = Path.of("target/storm-attackers.log").toAbsolutePath();
      Map<String, Long> cpuBefore = ThreadCpu.byGroup(node.pid());
      Process attackers = startAttackers(s, base, httpPort, modelName, promptChars, s.seconds(), attackLog);
      attackerProcesses.add(attackers);
      long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(s.seconds());
      List<Double> storm = new ArrayList<>();
      int streams = 0;
      while (System.nanoTime() < end && node.isAlive()) {
        try {
          Stream stream = stream(stub, s.tokens(), 1000 + streams++);
          storm.addAll(stream.gaps());
          count(outcomes, "ordinary streams", stream.tokens() == s.tokens() ? "all " + s.tokens() + " tokens" : stream.tokens() + " tokens");
        } catch (RuntimeException e) {
          count(outcomes, "ordinary streams", "failed: " + e.getMessage());
          if (!node.isAlive()) break;
        }
      }
      Map<String, Long> cpuDuring = ThreadCpu.since(cpuBefore, ThreadCpu.byGroup(node.pid()));
      // The attackers stop at the same deadline, count the half-open connections the node still holds, and report.
      String report = new String(attackers.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!attackers.waitFor(3, TimeUnit.MINUTES)) attackers.destroyForcibly();
      // The report is the last line: the JVM may print warnings on stdout before it.
      String[] lines = report.strip().split("\\R");
      com.fasterxml.jackson.databind.JsonNode reported = JSON.readTree(report.isBlank() ? "{}" : lines[lines.length - 1]);
      reported.path("outcomes").properties().forEach(kind -> kind.getValue().properties().forEach(
          o -> outcomes.computeIfAbsent(kind.getKey(), k -> new ConcurrentHashMap<>()).put(o.getKey(), new AtomicLong(o.getValue().asLong()))));
      int stillOpen = reported.path("stillOpen").asInt(-1);
      if (reported.isEmpty()) System.out.println("  the attackers reported nothing (exit " + attackers.exitValue() + "); see " + attackLog);
      long peak = rss.peak();
      System.out.printf(Locale.ROOT, "storm: %d s of %d template bombs, %d budget bombs, %d maximum bodies (%s), %d maximum prompts (%,d chars), %d half-open connections%n",
          s.seconds(), s.bombs(), s.budgetBombs(), s.bodies(), KvPoolSizing.bytes(s.maxBodyBytes()), s.prompts(), promptChars, s.halfOpen());
      if (!node.isAlive()) {
        System.out.println("  the node DIED during the storm (exit " + node.exitValue() + (rss.killed() ? ", killed by the watchdog at VmRSS "
            + KvPoolSizing.bytes(rss.peak()) + " > --max-rss" : "") + "); see " + log);
      }
      System.out.printf(Locale.ROOT, "  VmRSS peak %s, VmHWM %s; margin over heap max + KV pool + model (%s): %s%n",
          KvPoolSizing.bytes(peak), KvPoolSizing.bytes(rss.highWaterMark()), KvPoolSizing.bytes(heapMax + kvBytes + model.totalBytes()),
          KvPoolSizing.bytes(peak - heapMax - kvBytes - model.totalBytes()));
      if (!storm.isEmpty()) {
        System.out.printf(Locale.ROOT, "  ordinary stream ITL p50 %.1f ms, p99 %.1f ms (%d gaps, %d streams; p90 %.1f, p95 %.1f, max %.1f): p99 %.2f× idle (target ≤ 1.5×)%n",
            percentile(storm, 50), percentile(storm, 99), storm.size(), streams, percentile(storm, 90), percentile(storm, 95),
            percentile(storm, 100), percentile(storm, 99) / percentile(idle, 99));
      }
      System.out.println("  node CPU during the storm by thread group (s): " + ThreadCpu.describe(cpuDuring) + "; the attackers' process: "
          + String.format(Locale.ROOT, "%.1f", reported.path("cpuSeconds").asDouble(Double.NaN)));
      System.out.printf(Locale.ROOT, "  half-open connections the node still held at the end: %d of %d; attackers at priority %s%n", stillOpen,
          reported.path("halfOpen").asInt(0), s.attackerPriority());
      for (Map.Entry<String, Map<String, AtomicLong>> e : new TreeMap<>(outcomes).entrySet()) {
        System.out.println("  " + e.getKey() + ": " + new TreeMap<>(e.getValue()));
      }
    } finally {
      for (Process p : attackerProcesses) p.destroyForcibly();
      rss.stop();
      channel.shutdownNow();
      node.destroy();
      if (!node.waitFor(30, TimeUnit.SECONDS)) node.destroyForcibly();
      Runtime.getRuntime().removeShutdownHook(killer);
    }
  }

  /**
   * The attackers, a process of their own started at a low CPU priority ({@code --attacker-priority}: SCHED_IDLE by
   * default), so that on a machine with few cores they take what the node leaves rather than the node's cores: as
   * attackers on other hosts would. (At nice 19 they still took 14 of the storm's 120 core-seconds: a woken engine
   * thread waits for a running nice-19 task's slice to end; a SCHED_IDLE task is preempted at once.) Arguments: base URL, HTTP port, model name, seconds, bombs, budget bombs, bodies, prompts, prompt
   * characters, half-open connections, body bytes. Prints one JSON object: {@code outcomes} (kind → answer → count),
   * {@code halfOpen} (opened), {@code stillOpen} (held by the node at the end), {@code cpuSeconds} (its own CPU).
   */
  static final class Attackers {
    public static void main(String[] args) throws Exception {
      String base = args[0];
      int httpPort = Integer.parseInt(args[1]);
      String modelName = args[2];
      int seconds = Integer.parseInt(args[3]);
      int bombs = Integer.parseInt(args[4]);
      int budgetBombs = Integer.parseInt(args[5]);
      int bodies = Integer.parseInt(args[6]);
      int prompts = Integer.parseInt(args[7]);
      int promptChars = Integer.parseInt(args[8]);
      int halfOpenCount = Integer.parseInt(args[9]);
      int maxBodyBytes = Integer.parseInt(args[10]);
      HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
      AtomicBoolean storming = new AtomicBoolean(true);
      Map<String, Map<String, AtomicLong>> outcomes = new ConcurrentHashMap<>();
      List<Socket> halfOpen = new CopyOnWriteArrayList<>();
      ExecutorService attackers = Executors.newVirtualThreadPerTaskExecutor();
      String bomb = chatBody(modelName, TEMPLATE_BOMB, 8);
      String budgetBomb = conversationBody(modelName, List.of("Hello.", "Hello! How can I help?", TEMPLATE_BOMB), 8);
      String maxBody = maxSizeBody(modelName, maxBodyBytes);
      AtomicLong promptSeed = new AtomicLong(1000);
      // Each maximum prompt its own text: a repeated one would be a prefix-cache hit and cost no prefill.
      java.util.function.Supplier<String> maxPrompt = () -> uncheckedChatBody(modelName, words(promptChars, promptSeed.incrementAndGet()), 1);
      for (int i = 0; i < bombs; i++) attackers.submit(() -> attack(http, base, () -> bomb, "template bombs", storming, outcomes));
      for (int i = 0; i < budgetBombs; i++) attackers.submit(() -> attack(http, base, () -> budgetBomb, "budget bombs", storming, outcomes));
      for (int i = 0; i < bodies; i++) attackers.submit(() -> attack(http, base, () -> maxBody, "maximum bodies", storming, outcomes));
      for (int i = 0; i < prompts; i++) attackers.submit(() -> attack(http, base, maxPrompt, "maximum prompts", storming, outcomes));
      attackers.submit(() -> openHalfOpen(httpPort, halfOpenCount, halfOpen, outcomes));
      Thread.sleep(TimeUnit.SECONDS.toMillis(seconds));
      storming.set(false);
      int stillOpen = 0;
      for (Socket socket : halfOpen) if (isOpen(socket)) stillOpen++;
      for (Socket socket : halfOpen) socket.close();
      attackers.shutdown();
      attackers.awaitTermination(2, TimeUnit.MINUTES);
      double cpuSeconds = ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
          .getProcessCpuTime() / 1e9;
      ObjectNode report = JSON.createObjectNode().put("halfOpen", halfOpen.size()).put("stillOpen", stillOpen).put("cpuSeconds", cpuSeconds);
      ObjectNode kinds = report.putObject("outcomes");
      outcomes.forEach((kind, counts) -> counts.forEach((o, n) -> kinds.with(kind).put(o, n.get())));
      System.out.println(JSON.writeValueAsString(report));
      System.exit(0);
    }
  }

  /** The attacker process for {@code seconds}, at {@code --attacker-priority}. */
  private static Process startAttackers(Settings s, String base, int httpPort, String modelName, int promptChars, int seconds, Path log)
      throws IOException {
    List<String> attack = new ArrayList<>();
    if (s.attackerPriority().equals("idle")) attack.addAll(List.of("chrt", "--idle", "0"));
    else if (Integer.parseInt(s.attackerPriority()) != 0) attack.addAll(List.of("nice", "-n", s.attackerPriority()));
    attack.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g", "-cp",
        System.getProperty("java.class.path"), Attackers.class.getName(), base, Integer.toString(httpPort), modelName,
        Integer.toString(seconds), Integer.toString(s.bombs()), Integer.toString(s.budgetBombs()), Integer.toString(s.bodies()),
        Integer.toString(s.prompts()), Integer.toString(promptChars), Integer.toString(s.halfOpen()), Integer.toString(s.maxBodyBytes())));
    return new ProcessBuilder(attack).redirectError(log.toFile()).start();
  }

  /** One ordinary stream: its tokens, and the gaps, in milliseconds, between its token messages after the first. */
  private record Stream(int tokens, List<Double> gaps) {}

  private static List<Double> gaps(SphinxGrpc.SphinxBlockingStub stub, int tokens, int i) {
    return stream(stub, tokens, i).gaps();
  }

  /** One ordinary stream of {@code tokens} tokens (a message may carry more than one when the client lags). */
  private static Stream stream(SphinxGrpc.SphinxBlockingStub stub, int tokens, int i) {
    GenerateRequest request = GenerateRequest.newBuilder().setRequestId("storm-stream-" + i)
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("Tell me a story, number " + i + ".")))
        .setSampling(SamplingParams.newBuilder().setMaxTokens(tokens).setIgnoreEos(true)).build();
    List<Double> gaps = new ArrayList<>();
    long last = -1;
    int received = 0;
    Iterator<GenerateResponse> answer = stub.withDeadlineAfter(5, TimeUnit.MINUTES).generate(request);
    while (answer.hasNext()) {
      GenerateResponse response = answer.next();
      if (response.getTokenIdsCount() == 0) continue;
      received += response.getTokenIdsCount();
      long now = System.nanoTime();
      if (last >= 0) gaps.add((now - last) / 1e6);
      last = now;
    }
    return new Stream(received, gaps);
  }

  /** Posts {@code bodies}' next to the chat endpoint over and over while {@code storming}, counting each answer's status. */
  private static void attack(HttpClient http, String base, java.util.function.Supplier<String> bodies, String kind, AtomicBoolean storming,
      Map<String, Map<String, AtomicLong>> outcomes) {
    while (storming.get()) {
      try {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions")).timeout(Duration.ofSeconds(60))
            .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(bodies.get())).build(),
            HttpResponse.BodyHandlers.ofString());
        count(outcomes, kind, outcome(r));
      } catch (IOException e) {
        count(outcomes, kind, e.getClass().getSimpleName());
        sleep(100); // the node may be gone: do not spin
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  /**
   * An answer as counted: its status, and for an error the {@code param} and the limit its message names (e.g.
   * {@code 400 messages (template-max-iterations)}).
   */
  private static String outcome(HttpResponse<String> r) {
    if (r.statusCode() == 200) return "200";
    String param = "";
    String limit = "";
    try {
      com.fasterxml.jackson.databind.JsonNode error = JSON.readTree(r.body()).path("error");
      param = error.path("param").asText("");
      java.util.regex.Matcher m = NAMED_LIMIT.matcher(error.path("message").asText(""));
      if (m.find()) limit = m.group(1) != null ? m.group(1) : m.group(2);
    } catch (IOException | RuntimeException e) {
      limit = "body not JSON";
    }
    return r.statusCode() + (param.isEmpty() ? "" : " " + param) + (limit.isEmpty() ? "" : " (" + limit + ")");
  }

  /** Opens {@code n} connections that each send a request head promising a body that never comes. */
  private static void openHalfOpen(int port, int n, List<Socket> sockets, Map<String, Map<String, AtomicLong>> outcomes) {
    byte[] head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nContent-Type: application/json\r\n"
        + "Content-Length: 100000\r\n\r\n{\"messages\": [").getBytes(StandardCharsets.US_ASCII);
    for (int i = 0; i < n; i++) {
      try {
        Socket socket = new Socket();
        socket.connect(new InetSocketAddress("127.0.0.1", port), 5000);
        OutputStream out = socket.getOutputStream();
        out.write(head);
        out.flush();
        sockets.add(socket);
        count(outcomes, "half-open connections", "opened");
      } catch (IOException e) {
        count(outcomes, "half-open connections", "refused: " + e.getClass().getSimpleName());
      }
    }
  }

  /** Whether the node still holds {@code socket} open: nothing to read yet, or an answer without a close. */
  private static boolean isOpen(Socket socket) {
    try {
      socket.setSoTimeout(1);
      InputStream in = socket.getInputStream();
      byte[] buffer = new byte[4096];
      for (int n; (n = in.read(buffer)) != -1; ) {
        if (n == 0) return true;
      }
      return false; // closed by the node
    } catch (java.net.SocketTimeoutException e) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * The longest chat prompt, in characters, the node accepts (status 200), from {@code maxChars} down by halves and
   * back up by quarters of the last step; its prefill is the most one request may cost.
   */
  private static int longestAcceptedPrompt(HttpClient http, String base, String model, int maxChars) throws Exception {
    int accepted = 0;
    int refused = maxChars + 1;
    int chars = maxChars;
    for (int attempt = 0; attempt < 16 && refused - accepted > 64; attempt++) {
      HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions")).timeout(Duration.ofMinutes(5))
          .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(chatBody(model, words(chars, 7), 1))).build(),
          HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() == 200) accepted = chars;
      else refused = chars;
      chars = (accepted + refused) / 2;
    }
    if (accepted == 0) throw new IllegalStateException("the node accepted no prompt up to " + maxChars + " characters");
    return accepted;
  }

  private static String uncheckedChatBody(String model, String content, int maxTokens) {
    try {
      return chatBody(model, content, maxTokens);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static String chatBody(String model, String content, int maxTokens) throws IOException {
    ObjectNode body = JSON.createObjectNode().put("model", model).put("max_tokens", maxTokens);
    body.putArray("messages").addObject().put("role", "user").put("content", content);
    return JSON.writeValueAsString(body);
  }

  /** A chat request of {@code contents} as alternating user and assistant messages, the first a user's. */
  private static String conversationBody(String model, List<String> contents, int maxTokens) throws IOException {
    ObjectNode body = JSON.createObjectNode().put("model", model).put("max_tokens", maxTokens);
    com.fasterxml.jackson.databind.node.ArrayNode messages = body.putArray("messages");
    for (int i = 0; i < contents.size(); i++) messages.addObject().put("role", i % 2 == 0 ? "user" : "assistant").put("content", contents.get(i));
    return JSON.writeValueAsString(body);
  }

  /** A chat request of exactly {@code bytes} bytes: one message of ordinary words filling the rest. */
  private static String maxSizeBody(String model, int bytes) throws IOException {
    String empty = chatBody(model, "", 1);
    String body = chatBody(model, words(bytes - empty.length(), 11), 1);
    if (body.length() != bytes) throw new IllegalStateException("body of " + body.length() + " bytes, wanted " + bytes);
    return body;
  }

  /** {@code n} characters of lowercase words and spaces (plain ASCII: one byte each, nothing to escape in JSON). */
  private static String words(int n, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    StringBuilder sb = new StringBuilder(n);
    while (sb.length() < n) {
      int length = 2 + random.nextInt(8);
      for (int i = 0; i < length && sb.length() < n; i++) sb.append((char) ('a' + random.nextInt(26)));
      if (sb.length() < n) sb.append(' ');
    }
    return sb.toString();
  }

  private static void awaitListening(HttpClient http, String base, Process node, Path log) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
    while (System.nanoTime() < deadline) {
      if (!node.isAlive()) throw new IllegalStateException("the node exited with " + node.exitValue() + "; see " + log);
      try {
        if (http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).timeout(Duration.ofSeconds(5)).build(),
            HttpResponse.BodyHandlers.discarding()).statusCode() == 200) return;
      } catch (IOException e) {
        // not listening yet
      }
      Thread.sleep(250);
    }
    throw new IllegalStateException("the node did not listen within 10 minutes; see " + log);
  }

  private static void count(Map<String, Map<String, AtomicLong>> outcomes, String kind, String outcome) {
    outcomes.computeIfAbsent(kind, k -> new ConcurrentHashMap<>()).computeIfAbsent(outcome, o -> new AtomicLong()).incrementAndGet();
  }

  private static double percentile(List<Double> values, int p) {
    if (values.isEmpty()) return Double.NaN;
    double[] sorted = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)];
  }

  private static long bytes(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    long unit = switch (t.charAt(t.length() - 1)) {
      case 'k' -> 1L << 10;
      case 'm' -> 1L << 20;
      case 'g' -> 1L << 30;
      default -> 1;
    };
    return Long.parseLong(unit == 1 ? t : t.substring(0, t.length() - 1)) * unit;
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * CPU time of a process's threads from {@code /proc/PID/task/TID/stat} (user + system, clock ticks), summed by
   * thread name with trailing digits dropped, so where a storm's CPU goes inside the node can be read off.
   */
  static final class ThreadCpu {
    /** {@code USER_HZ}: 100 on every Linux architecture the node runs on. */
    static final double TICKS_PER_SECOND = 100.0;

    static Map<String, Long> byGroup(long pid) {
      Map<String, Long> groups = new TreeMap<>();
      try (java.util.stream.Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
        for (Path task : (Iterable<Path>) tasks::iterator) {
          try {
            String stat = Files.readString(task.resolve("stat"));
            String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replaceAll("[-_ #]*\\d+$", "");
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            groups.merge(name, Long.parseLong(f[14 - 3]) + Long.parseLong(f[15 - 3]), Long::sum);
          } catch (IOException | RuntimeException e) {
            // the thread ended meanwhile
          }
        }
      } catch (IOException e) {
        // the process ended
      }
      return groups;
    }

    static Map<String, Long> since(Map<String, Long> before, Map<String, Long> after) {
      Map<String, Long> delta = new TreeMap<>();
      after.forEach((name, ticks) -> delta.put(name, ticks - before.getOrDefault(name, 0L)));
      return delta;
    }

    /** The groups over 0.5 s, largest first. */
    static String describe(Map<String, Long> ticks) {
      return ticks.entrySet().stream().filter(e -> e.getValue() >= TICKS_PER_SECOND / 2)
          .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
          .map(e -> String.format(Locale.ROOT, "%s %.1f", e.getKey(), e.getValue() / TICKS_PER_SECOND))
          .collect(java.util.stream.Collectors.joining(", "));
    }
  }

  /** Samples the node's VmRSS every 50 ms, keeps the peak, and kills the node past a limit. */
  private static final class ResidentMemory {
    private final Process node;
    private final long limitBytes;
    private final AtomicLong peak = new AtomicLong();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private volatile boolean killed;
    private Thread sampler;

    ResidentMemory(Process node, long limitBytes) {
      this.node = node;
      this.limitBytes = limitBytes;
    }

    void start() {
      sampler = Thread.ofPlatform().daemon().name("storm-rss").start(() -> {
        while (running.get() && node.isAlive()) {
          long now = current();
          peak.accumulateAndGet(now, Math::max);
          if (now > limitBytes) {
            killed = true;
            node.destroyForcibly();
          }
          sleep(50);
        }
      });
    }

    void stop() {
      running.set(false);
    }

    void resetPeak() {
      peak.set(current());
    }

    long peak() {
      return peak.get();
    }

    boolean killed() {
      return killed;
    }

    long current() {
      return status("VmRSS:");
    }

    long highWaterMark() {
      return status("VmHWM:");
    }

    /** A {@code /proc/PID/status} line in bytes; 0 once the process is gone. */
    private long status(String key) {
      try {
        for (String line : Files.readAllLines(Path.of("/proc", Long.toString(node.pid()), "status"))) {
          if (line.startsWith(key)) return Long.parseLong(line.substring(key.length()).trim().split("\\s+")[0]) * 1024;
        }
      } catch (IOException | RuntimeException e) {
        // the process ended
      }
      return 0;
    }
  }
}
