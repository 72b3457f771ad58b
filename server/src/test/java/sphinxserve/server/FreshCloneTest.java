package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.server.testing.RepositoryWithoutGroup;

/**
 * The README's commands on a fresh clone, as a newcomer (or CI) meets them: {@code git clone} of this repository
 * (what is committed: uncommitted changes are not in the clone), {@code bin/sphinx-serve} (which compiles the
 * node through Maven and builds the embedded bundle), then {@code bin/sphinx ask} about {@code docs/examples/scene.png},
 * then SIGTERM. The child Maven gets a local repository holding every third-party artifact this build already
 * has but none of the project's own ({@code dev.sphinxserve}), so a build that silently relied on an installed
 * SNAPSHOT fails here. It also holds the start to its promise of printing only the node's own lines.
 *
 * <p>It compiles the project once, so it takes tens of seconds to minutes; the timeout is for a slow machine.
 */
@Timeout(value = 15, unit = TimeUnit.MINUTES)
final class FreshCloneTest {

  /** The project's Maven group, absent from the child's local repository. */
  private static final String PROJECT_GROUP = "dev.sphinxserve";

  /** How long building and starting the node may take before the test gives up. */
  private static final Duration START_TIMEOUT = Duration.ofMinutes(10);

  /** The port in the node's JSON start line, {@code ..."port":"1234"..."sphinx-serve listening"...}. */
  private static final Pattern PORT = Pattern.compile("\"port\":\"(\\d+)\"");

  /** A JSON log line's logger. */
  private static final Pattern LOGGER = Pattern.compile("\"loggerName\":\"([^\"]+)\"");

  /** ANSI colour codes: Maven 3.8's console prints resets even in batch mode. */
  private static final Pattern ANSI = Pattern.compile("\u001B\\[[0-9;]*m");

  /**
   * The one line the JVM prints at start that the node cannot avoid: the JDK warns whenever an incubator module is
   * resolved (jdk.internal.module.ModuleBootstrap, no switch), and the sampler uses the Vector API.
   */
  private static final String INCUBATOR_WARNING = "WARNING: Using incubator modules: jdk.incubator.vector";

  @Test
  void readmeCommands_onAFreshClone_buildServeAnswerAndStopCleanly(@TempDir Path tmp) throws Exception {
    Path repo = gitRoot(Path.of("").toAbsolutePath());
    assumeTrue(repo != null, "not in a git work tree: nothing to clone");
    Path clone = tmp.resolve("clone");
    Path mavenRepo = tmp.resolve("m2");
    long t0 = System.nanoTime();
    run(tmp, Map.of(), Duration.ofMinutes(2), "git", "clone", "--quiet", repo.toString(), clone.toString());

    Process node = null;
    try {
      RepositoryWithoutGroup.create(outerMavenRepository(), mavenRepo, PROJECT_GROUP);
      Map<String, String> env = Map.of(
          "MAVEN_OPTS", (System.getenv().getOrDefault("MAVEN_OPTS", "") + " -Dmaven.repo.local=" + mavenRepo).trim(),
          "SPHINX_PORT", "0", // the node picks a free port and logs it
          "SPHINX_METRICS_PORT", "0",
          "SPHINX_BUNDLE_CACHE", tmp.resolve("bundles").toString(), // not ~/.cache/sphinx-serve
          "DJL_CACHE_DIR", tmp.resolve("djl").toString()); // the tokenizers' native library, not into ~/.djl.ai
      Path nodeOut = tmp.resolve("node.out");
      Path nodeErr = tmp.resolve("node.err");
      node = processBuilder(clone, env, "bin/sphinx-serve")
          .redirectOutput(nodeOut.toFile()).redirectError(nodeErr.toFile()).start();

      int port = awaitServing(node, nodeOut, nodeErr);
      long started = System.nanoTime();
      String startOut = read(nodeOut);
      String startErr = read(nodeErr);

      Result ask = run(clone, Map.of("MAVEN_OPTS", env.get("MAVEN_OPTS")), Duration.ofMinutes(5), "bin/sphinx", "ask",
          "--target", "localhost:" + port, "--image", "docs/examples/scene.png", "--max-tokens", "16", "What is in the image?");
      long answered = System.nanoTime();
      assertEquals(0, ask.exit(), "bin/sphinx ask exit code\n" + ask);
      assertTrue(ask.out().chars().anyMatch(Character::isLetter), "an answer on stdout\n" + ask);
      assertOnly(ask.err(), List.of("building client ..."), "bin/sphinx's stderr");

      node.destroy(); // SIGTERM: the node drains and exits
      assertTrue(node.waitFor(60, TimeUnit.SECONDS), "exited after SIGTERM\n" + output(nodeOut, nodeErr));
      long stopped = System.nanoTime();
      // A JVM ended by SIGTERM exits with 128 + 15 once its shutdown hooks (the drain) have run; anything else is
      // a crash or a System.exit on a failure.
      assertEquals(143, node.exitValue(), "exit code after SIGTERM\n" + output(nodeOut, nodeErr));

      assertStartPrintsOnlyTheNodesLines(startOut, startErr);
      String out = read(nodeOut);
      for (String line : out.lines().toList()) {
        assertTrue(!line.contains("\"level\":\"WARN\"") && !line.contains("\"level\":\"ERROR\""),
            "no warning or error from start to exit: " + line);
      }
      assertTrue(out.lines().anyMatch(l -> l.contains("\"loggerName\":\"sphinxserve.requests\"") && l.contains("{\"status\":\"OK\"}")),
          "the node logged the call as OK\n" + out);
      assertOnly(read(nodeErr), List.of("building server ...", INCUBATOR_WARNING), "the node's stderr");

      System.out.printf("FreshCloneTest: clone + build + start %.1f s, ask %.1f s, SIGTERM to exit %.1f s%n",
          (started - t0) / 1e9, (answered - started) / 1e9, (stopped - answered) / 1e9);
    } finally {
      if (node != null) destroyTree(node.toHandle());
      RepositoryWithoutGroup.remove(mavenRepo); // links first, so @TempDir's delete never meets one
    }
  }

  /** Start-up: only JSON lines of the node's own loggers on stdout, and on stderr nothing but the build's and the JVM's one line. */
  private static void assertStartPrintsOnlyTheNodesLines(String out, String err) {
    List<String> foreign = new ArrayList<>();
    for (String line : out.lines().filter(l -> !l.isBlank()).toList()) {
      Matcher logger = LOGGER.matcher(line);
      if (!line.startsWith("{") || !logger.find() || !logger.group(1).startsWith("sphinxserve.")) foreign.add(line);
    }
    assertTrue(foreign.isEmpty(), "start-up printed lines that are not the node's own:\n" + String.join("\n", foreign));
    assertOnly(err, List.of("building server ...", INCUBATOR_WARNING), "the node's stderr at start");
    assertTrue(!err.contains("sun.misc.Unsafe"), err);
  }

  /** Every non-blank line of {@code text} (ANSI codes removed) is one of {@code allowed}. */
  private static void assertOnly(String text, List<String> allowed, String what) {
    List<String> other = ANSI.matcher(text).replaceAll("").lines()
        .map(String::strip).filter(l -> !l.isEmpty() && !allowed.contains(l)).toList();
    assertTrue(other.isEmpty(), what + " holds lines besides " + allowed + ":\n" + String.join("\n", other));
  }

  /** Waits for the start line, then asks gRPC health; returns the port. Fails when the node exits first. */
  private static int awaitServing(Process node, Path out, Path err) throws Exception {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      if (!node.isAlive()) fail("bin/sphinx-serve exited with " + node.exitValue() + " before serving\n" + output(out, err));
      for (String line : read(out).lines().toList()) {
        Matcher port = PORT.matcher(line);
        if (line.contains("sphinx-serve listening") && port.find()) {
          int p = Integer.parseInt(port.group(1));
          assertEquals(ServingStatus.SERVING, health(p), "health once listening");
          return p;
        }
      }
      Thread.sleep(250);
    }
    fail("bin/sphinx-serve did not serve within " + START_TIMEOUT + "\n" + output(out, err));
    return -1;
  }

  private static ServingStatus health(int port) throws InterruptedException {
    ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    try {
      return HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
          .check(HealthCheckRequest.newBuilder().setService(SphinxGrpc.SERVICE_NAME).build()).getStatus();
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** The Maven local repository this build uses (the POM passes it), else the default. */
  private static Path outerMavenRepository() {
    String configured = System.getProperty("sphinx.mavenRepository");
    return configured != null && !configured.isBlank()
        ? Path.of(configured) : Path.of(System.getProperty("user.home"), ".m2", "repository");
  }

  /** The root of the git work tree holding {@code dir}, or null when there is none (or no git). */
  private static Path gitRoot(Path dir) throws Exception {
    try {
      Result r = run(dir, Map.of(), Duration.ofSeconds(30), "git", "rev-parse", "--show-toplevel");
      return r.exit() == 0 ? Path.of(r.out().strip()) : null;
    } catch (IOException noGit) {
      return null;
    }
  }

  // ---- processes -------------------------------------------------------------------------------------------

  private record Result(int exit, String out, String err) {
    @Override
    public String toString() {
      return "exit " + exit + "\n--- stdout\n" + out + "\n--- stderr\n" + err;
    }
  }

  /**
   * A process in {@code dir} with this JVM's environment less any {@code SPHINX_*} variable (a developer's own
   * settings must not steer the node under test), plus {@code env}.
   */
  private static ProcessBuilder processBuilder(Path dir, Map<String, String> env, String... command) {
    ProcessBuilder pb = new ProcessBuilder(command).directory(dir.toFile());
    pb.environment().keySet().removeIf(k -> k.startsWith("SPHINX_"));
    pb.environment().putAll(env);
    return pb;
  }

  /** Runs {@code command} to completion (its output in files, so no pipe can fill up), killing it after {@code timeout}. */
  private static Result run(Path dir, Map<String, String> env, Duration timeout, String... command) throws Exception {
    Path out = Files.createTempFile("fresh-clone-", ".out");
    Path err = Files.createTempFile("fresh-clone-", ".err");
    try {
      Process p = processBuilder(dir, env, command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
      try {
        if (!p.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) fail(String.join(" ", command) + " ran past " + timeout + "\n" + output(out, err));
        return new Result(p.exitValue(), read(out), read(err));
      } finally {
        destroyTree(p.toHandle());
      }
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  /** Kills {@code process} and everything it started (Maven's JVM during a build), listed before the parent dies. */
  private static void destroyTree(ProcessHandle process) {
    List<ProcessHandle> descendants = process.descendants().toList();
    process.destroyForcibly();
    descendants.forEach(ProcessHandle::destroyForcibly);
  }

  private static String output(Path out, Path err) throws IOException {
    return "--- stdout\n" + read(out) + "\n--- stderr\n" + read(err);
  }

  /** A file a process may still be writing: a character cut in half is replaced, not an error. */
  private static String read(Path file) throws IOException {
    return new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
  }
}
