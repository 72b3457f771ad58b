package sphinxserve.runtime.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The ONNX Runtime environment is made one way, on a large stack, whatever thread asks first: the check that would
 * have caught {@code bin/bench-engine}'s SIGSEGV in {@code OrtEnvironment.createHandle} (see {@link OrtEnvironments}).
 */
class OrtEnvironmentsTest {

  /** A direct call, a qualified one, or a static import of the call, with any spacing. */
  private static final Pattern DIRECT_CALL = Pattern.compile(
      "OrtEnvironment\\s*\\.\\s*getEnvironment\\s*\\(|import\\s+static\\s+ai\\.onnxruntime\\.OrtEnvironment\\s*\\.\\s*(getEnvironment|\\*)");

  @Test
  void noSourceOutsideOrtEnvironments_createsTheEnvironmentItself() throws IOException {
    Path root = Path.of("").toAbsolutePath().getParent(); // surefire runs in the module's folder
    assertTrue(Files.isRegularFile(root.resolve("pom.xml")) && Files.isDirectory(root.resolve("runtime")), "not the repository root: " + root);
    List<Path> sources;
    try (Stream<Path> files = Files.walk(root)) {
      sources = files.filter(p -> p.toString().endsWith(".java"))
          .filter(p -> p.toString().contains("/src/main/java/") || p.toString().contains("/src/test/java/"))
          .filter(p -> !p.toString().contains("/target/") && !p.toString().contains("/.git/"))
          .toList();
    }
    assertTrue(sources.stream().anyMatch(p -> p.endsWith("OnnxModelRuntime.java")), "the walk missed the runtime's sources");
    assertTrue(sources.size() > 100, "only " + sources.size() + " sources found under " + root);
    List<String> offenders = new ArrayList<>();
    for (Path source : sources) {
      if (source.getFileName().toString().equals("OrtEnvironments.java")) continue;
      if (DIRECT_CALL.matcher(Files.readString(source, StandardCharsets.UTF_8)).find()) offenders.add(root.relativize(source).toString());
    }
    assertEquals(List.of(), offenders, "create the ONNX Runtime environment with OrtEnvironments.get(), not on the caller's stack");
  }

  @Test
  void pattern_catchesTheWaysToCallIt() {
    String type = "OrtEnvironment"; // split, so this file does not match its own scan
    assertTrue(DIRECT_CALL.matcher("var env = " + type + ".getEnvironment();").find());
    assertTrue(DIRECT_CALL.matcher("ai.onnxruntime." + type + "\n    .getEnvironment(\"x\")").find());
    assertTrue(DIRECT_CALL.matcher("import static ai.onnxruntime." + type + ".getEnvironment;").find());
    assertTrue(!DIRECT_CALL.matcher(type + "s.get()").find());
  }

  /**
   * In a fresh JVM whose every thread has a tiny stack ({@code -Xss256k}), the first request comes from a thread of
   * 128 KiB; the environment is still made on the 16 MiB creator thread, and works (a session opens).
   */
  @Test
  void get_firstAskedFromATinyStack_createsItOnTheLargeStackThread() throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process child = new ProcessBuilder(java, "-Xss256k", "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
        OrtEnvironmentsProbe.class.getName()).redirectErrorStream(true).start();
    String output;
    try (var in = child.getInputStream()) {
      output = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the probe JVM did not end");
    assertEquals(0, child.exitValue(), output);
    assertTrue(output.contains("creation=Creation[threadName=" + OrtEnvironments.CREATOR_THREAD_NAME + ", stackBytes=" + (16L << 20)
        + ", requestedBy=" + OrtEnvironmentsProbe.TINY_THREAD + "]"), output);
    assertTrue(output.contains("session opened: true"), output);
  }
}
