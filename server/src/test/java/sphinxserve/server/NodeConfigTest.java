package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

final class NodeConfigTest {

  @Test
  void parse_flagsOverEnvironmentOverDefaults() {
    NodeConfig c = NodeConfig.parse(new String[] {"--port=7000", "--image-cache-bytes", "512m"},
        Map.of("SPHINX_PORT", "6000", "SPHINX_MAX_IMAGE_JOBS", "3"));
    assertEquals(7000, c.port());
    assertEquals(512L << 20, c.imageCacheBytes());
    assertEquals(3, c.maxImageJobs());
    assertEquals(16 << 20, c.maxMessageBytes());
    assertEquals("embedded:tiny", c.bundle());
  }

  @Test
  void parse_maxConnectionAge_isOffByDefaultAndReadFromTheEnvironment() {
    assertEquals(0, NodeConfig.defaults().maxConnectionAgeSeconds());
    assertEquals(300, NodeConfig.parse(new String[0], Map.of("SPHINX_MAX_CONNECTION_AGE_SECONDS", "300")).maxConnectionAgeSeconds());
    assertTrue(assertThrows(IllegalArgumentException.class,
        () -> NodeConfig.parse(new String[] {"--max-connection-age-seconds=-1"}, Map.of()))
        .getMessage().startsWith("--max-connection-age-seconds: -1 is outside"));
    assertTrue(NodeConfig.usage().contains("--max-connection-age-seconds"));
  }

  @Test
  void parse_badInput_namesTheOption() {
    assertTrue(assertThrows(IllegalArgumentException.class, () -> NodeConfig.parse(new String[] {"--nope=1"}, Map.of()))
        .getMessage().startsWith("unknown option --nope"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> NodeConfig.parse(new String[] {"--port=x"}, Map.of()))
        .getMessage().startsWith("--port: 'x' is not an integer"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> NodeConfig.parse(new String[] {"--port=70000"}, Map.of()))
        .getMessage().startsWith("--port: 70000 is outside"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> NodeConfig.parse(new String[] {"--port"}, Map.of()))
        .getMessage().startsWith("--port: missing value"));
  }
}
