package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import sphinxserve.server.SphinxNode;

/**
 * {@link SphinxNode#main}'s contract with whoever starts it (a shell, Kubernetes): a bad option ends the JVM before
 * anything opens, with exit code 2 and one line on stderr naming the option.
 */
final class SphinxNodeMainTest {

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      --provider=cuda | error: provider: not supported yet, use cpu
      --port=x        | error: port: must be an integer
      """)
  void badOption_exitsWith2AndOneLineNamingIt(String flag, String expectedStart) throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process p = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"),
        SphinxNode.class.getName(), flag)).start();
    p.getOutputStream().close();
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "exited");
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(2, p.exitValue(), err);
    assertEquals("", out);
    List<String> lines = err.lines().toList();
    assertEquals(1, lines.size(), err);
    assertTrue(lines.getFirst().startsWith(expectedStart), err);
  }
}
