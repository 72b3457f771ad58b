package sphinxserve.server.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.scheduler.EngineConfig;
import sphinxserve.scheduler.ItlTarget;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.KvCacheMemory;
import sphinxserve.server.config.NodeConfig;

final class NodeConfigTest {

  @TempDir
  static Path dir;

  private static Path file(String name, String text) throws IOException {
    return Files.writeString(dir.resolve(name), text);
  }

  private static String error(String[] args, Map<String, String> env) {
    return assertThrows(IllegalArgumentException.class, () -> NodeConfig.parse(args, env)).getMessage();
  }

  private static String error(String... args) {
    return error(args, Map.of());
  }

  @Test
  void model_aFolderServedInsteadOfTheBundleWithItsOwnOptions() throws IOException {
    Path model = Files.createDirectories(dir.resolve("Some-Model"));
    NodeConfig c = NodeConfig.parse(new String[] {"--model", model.toString(), "--quantize", "INT4", "--max-context", "4096"}, Map.of());
    assertEquals(model, c.model());
    assertEquals("int4", c.quantize());
    assertEquals(4096, c.maxContext());
    assertEquals(null, NodeConfig.defaults().model());
    assertTrue(error("--model", dir.resolve("missing").toString()).startsWith("model: directory"));
    assertTrue(error("--model", model.toString(), "--bundle", "embedded:bench").startsWith("model: serves instead of --bundle"));
    assertTrue(error("--quantize", "int4").startsWith("quantize: applies to --model only"));
    assertTrue(error("--model", model.toString(), "--quantize", "int3").startsWith("quantize: must be none, int8 or int4"));
  }

  @Test
  void chatTemplateLimits_defaultsAndFlags() {
    var defaults = NodeConfig.defaults().chatTemplateLimits();
    assertEquals(4L * 65536, defaults.maxOutputChars(), "auto: 4 x --max-prompt-chars");
    assertEquals(100_000, defaults.maxIterations());
    assertEquals(Duration.ofSeconds(2), defaults.timeout());
    assertEquals(40_000, NodeConfig.parse(new String[] {"--max-prompt-chars=10000"}, Map.of()).chatTemplateLimits().maxOutputChars());
    var set = NodeConfig.parse(new String[] {"--max-rendered-prompt-chars=5000", "--template-timeout=250ms",
        "--template-max-iterations=77"}, Map.of()).chatTemplateLimits();
    assertEquals(5000, set.maxOutputChars());
    assertEquals(Duration.ofMillis(250), set.timeout());
    assertEquals(77, set.maxIterations());
    assertTrue(error("--max-rendered-prompt-chars=0").startsWith("max-rendered-prompt-chars: must be an integer"));
    assertTrue(error("--template-timeout=0").startsWith("template-timeout: must be a positive duration"));
    assertTrue(error("--template-max-iterations=x").startsWith("template-max-iterations: must be an integer"));
  }

  @Test
  void toolCallFormat_autoByDefault_flagOverrides() {
    assertEquals(null, NodeConfig.defaults().toolCallFormat(), "auto: recognised from the chat template");
    assertEquals(sphinxserve.runtime.chat.ToolCallFormat.HERMES, NodeConfig.parse(new String[] {"--tool-call-format=hermes"}, Map.of()).toolCallFormat());
    assertEquals(sphinxserve.runtime.chat.ToolCallFormat.LLAMA3_JSON, NodeConfig.parse(new String[] {"--tool-call-format=llama-json"}, Map.of()).toolCallFormat());
    assertEquals(sphinxserve.runtime.chat.ToolCallFormat.LLAMA3_JSON, NodeConfig.parse(new String[] {"--tool-call-format=llama3_json"}, Map.of()).toolCallFormat());
    assertEquals(sphinxserve.runtime.chat.ToolCallFormat.NONE, NodeConfig.parse(new String[] {"--tool-call-format=none"}, Map.of()).toolCallFormat());
    assertTrue(error("--tool-call-format=xml").startsWith("tool-call-format: must be auto, hermes, llama-json or none"));
  }

  @Test
  void parse_flagsOverEnvironmentOverFileOverDefaults() throws IOException {
    Path config = file("precedence.properties", """
        # every source sets port; file-only and file+env options
        port = 5000
        max-image-jobs = 2
        kv-blocks=512
        image-timeout: 2s
        """);
    NodeConfig c = NodeConfig.parse(new String[] {"--config", config.toString(), "--port=7000", "--image-cache-bytes", "512m"},
        Map.of("SPHINX_PORT", "6000", "SPHINX_MAX_IMAGE_JOBS", "3"));
    assertEquals(7000, c.port(), "flag over env and file");
    assertEquals(3, c.maxImageJobs(), "env over file");
    assertEquals(512, c.kvBlocks(), "file over default");
    assertEquals(Duration.ofSeconds(2), c.imageTimeout());
    assertEquals(512L << 20, c.imageCacheBytes());
    assertEquals(16 << 20, c.maxMessageBytes(), "default");
    assertEquals("embedded:sphinx-tiny", c.bundle());
  }

  @Test
  void parse_maxConnectionAge_isOffByDefaultAndReadFromTheEnvironment() {
    assertEquals(0, NodeConfig.defaults().maxConnectionAgeSeconds());
    assertEquals(300, NodeConfig.parse(new String[0], Map.of("SPHINX_MAX_CONNECTION_AGE_SECONDS", "300")).maxConnectionAgeSeconds());
    assertTrue(assertThrows(IllegalArgumentException.class,
        () -> NodeConfig.parse(new String[] {"--max-connection-age-seconds=-1"}, Map.of()))
        .getMessage().startsWith("max-connection-age-seconds:"));
    assertTrue(NodeConfig.usage().contains("--max-connection-age-seconds"));
  }

  @Test
  void parse_configFromEnvironment_isRead() throws IOException {
    Path config = file("env.properties", "max-running-requests=3\n");
    assertEquals(3, NodeConfig.parse(new String[0], Map.of("SPHINX_CONFIG", config.toString())).maxRunningRequests());
  }

  @Test
  void parse_defaults_plaintextCpuAndTheEngineDefaults() {
    NodeConfig c = NodeConfig.defaults();
    assertFalse(c.tls());
    assertNull(c.tlsCert());
    assertEquals(RuntimeOptions.ExecutionProvider.CPU, c.runtimeOptions().provider());
    assertEquals(Duration.ofSeconds(30), c.imageTimeout());
    EngineConfig engine = c.engineConfig();
    assertEquals(EngineConfig.defaults().maxNumBatchedTokens(), engine.maxNumBatchedTokens());
    assertEquals(64, engine.maxNumSeqs());
    assertEquals(256, engine.maxWaiting());
  }

  @Test
  void parse_schedulerAndProviderKnobs_reachEngineAndRuntimeOptions() {
    NodeConfig c = NodeConfig.parse(new String[] {"--max-batched-tokens=512", "--max-running-requests=8", "--max-waiting-requests=9",
        "--max-itl-ms=100", "--priority-aging-seconds=2.5", "--kv-blocks=100", "--kv-block-size=32", "--provider=CPU", "--device-id=1", "--ort-threads=3"}, Map.of());
    EngineConfig engine = c.engineConfig();
    assertEquals(512, engine.maxNumBatchedTokens());
    assertEquals(8, engine.maxNumSeqs());
    assertEquals(9, engine.maxWaiting());
    assertEquals(ItlTarget.millis(100), engine.itlTarget());
    assertEquals(ItlTarget.relative(1.5), NodeConfig.parse(new String[] {"--max-itl-ms=1.5x"}, Map.of()).engineConfig().itlTarget());
    assertEquals(ItlTarget.OFF, NodeConfig.parse(new String[] {"--max-itl-ms=off"}, Map.of()).engineConfig().itlTarget());
    assertEquals(ItlTarget.OFF, NodeConfig.parse(new String[] {"--max-itl-ms=0"}, Map.of()).engineConfig().itlTarget());
    assertEquals(ItlTarget.OFF, NodeConfig.defaults().engineConfig().itlTarget(),
        "throughput first unless asked: a target costs prefill throughput on this runtime (docs/OPERATIONS.md)");
    assertEquals(2.5, engine.priorityAgingSeconds());
    assertEquals(100, c.kvBlocks());
    assertEquals(32, c.kvBlockSize());
    assertEquals(new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 1, 3, false, true), c.runtimeOptions());
    assertTrue(c.runtimeOptions().wideBatchSession(), "int4 bundles get the wide-batch session by default");
    assertFalse(NodeConfig.parse(new String[] {"--int4-wide-session=false"}, Map.of()).runtimeOptions().wideBatchSession());
    assertTrue(error("--int4-wide-session=maybe").startsWith("int4-wide-session: must be true or false"));
  }

  @Test
  void parse_kvDefaults_blocksAutoAndHalfTheMemoryLeft() {
    NodeConfig c = NodeConfig.defaults();
    assertEquals(0, c.kvBlocks(), "auto");
    assertEquals(KvCacheMemory.ofFraction(0.5), c.kvCacheMemory());
    assertTrue(NodeConfig.usage().contains("--kv-cache-memory "));
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      4g         | 4294967296 | 0
      512m       | 536870912  | 0
      1048576    | 1048576    | 0
      0.9        | 0          | 0.9
      1.0        | 0          | 1.0
      .25        | 0          | 0.25
      """)
  void parse_kvCacheMemory_bytesOrFraction(String value, long bytes, double fraction) {
    KvCacheMemory m = NodeConfig.parse(new String[] {"--kv-cache-memory=" + value}, Map.of()).kvCacheMemory();
    assertEquals(new KvCacheMemory(bytes, fraction), m);
    assertEquals(fraction > 0, m.isFraction());
  }

  @Test
  void parse_kvBlocksAndKvCacheMemory_bothKeptBlocksAutoAgainFromAFlag() {
    NodeConfig c = NodeConfig.parse(new String[] {"--kv-cache-memory=2g"}, Map.of("SPHINX_KV_BLOCKS", "300"));
    assertEquals(300, c.kvBlocks(), "the override SphinxNode applies first");
    assertEquals(KvCacheMemory.ofBytes(2L << 30), c.kvCacheMemory());
    assertEquals(0, NodeConfig.parse(new String[] {"--kv-blocks=auto"}, Map.of("SPHINX_KV_BLOCKS", "300")).kvBlocks());
  }

  @ParameterizedTest
  @CsvSource({"cuda", "tensorrt", "CUDA", "TensorRT"})
  void parse_gpuProvider_isRefusedWithTheReason(String provider) throws IOException {
    String expected = "provider: not supported yet, use cpu: the KV pools live in host memory, so ONNX Runtime would copy"
        + " every pool to the GPU and back at each step";
    String fromFlag = error("--provider=" + provider);
    assertTrue(fromFlag.startsWith(expected), fromFlag);
    assertTrue(fromFlag.endsWith("got '" + provider + "' (from --provider)"), fromFlag);
    String fromEnv = error(new String[0], Map.of("SPHINX_PROVIDER", provider));
    assertTrue(fromEnv.startsWith(expected) && fromEnv.endsWith("(from SPHINX_PROVIDER)"), fromEnv);
    Path config = file("gpu-" + provider + ".properties", "provider=" + provider + "\n");
    String fromFile = error("--config=" + config);
    assertTrue(fromFile.startsWith(expected) && fromFile.endsWith("(from " + config + ")"), fromFile);
  }

  @Test
  void parse_tlsCertAndKey_bothSetServesTls() throws IOException {
    Path cert = file("cert.pem", "x");
    Path key = file("key.pem", "y");
    NodeConfig c = NodeConfig.parse(new String[] {"--tls-cert=" + cert, "--tls-key=" + key}, Map.of());
    assertTrue(c.tls());
    assertEquals(cert, c.tlsCert());
    assertEquals(key, c.tlsKey());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      --kv-block-size=7            | kv-block-size: must be a power of two between 1 and 256, got '7' (from --kv-block-size)
      --kv-block-size=512          | kv-block-size: must be an integer in 1..256, got '512'
      --kv-blocks=0                | kv-blocks: must be auto or an integer in 1..2147483647, got '0' (from --kv-blocks)
      --kv-blocks=many             | kv-blocks: must be auto or an integer in 1..
      --kv-cache-memory=1          | kv-cache-memory: must be a fraction in (0,1] with a decimal point (e.g. 0.5, 1.0) or a size of at least 1m
      --kv-cache-memory=1.5        | kv-cache-memory: must be a fraction in (0,1]
      --kv-cache-memory=0.0        | kv-cache-memory: must be a fraction in (0,1]
      --kv-cache-memory=-0.5       | kv-cache-memory: must be a fraction in (0,1]
      --kv-cache-memory=512k       | kv-cache-memory: must be a fraction in (0,1] with a decimal point (e.g. 0.5, 1.0) or a size of at least 1m
      --kv-cache-memory=lots       | kv-cache-memory: must be a fraction
      --kv-cache-memory=50%        | kv-cache-memory: must be a fraction
      --kv-cache-memory=-4g        | kv-cache-memory: must be a fraction
      --kv-cache-memory=0.5e1      | kv-cache-memory: must be a fraction
      --port=x                     | port: must be an integer in 0..65535, got 'x' (from --port)
      --port=70000                 | port: must be an integer in 0..65535, got '70000'
      --image-cache-bytes=lots     | image-cache-bytes: must be a size in bytes
      --image-timeout=0s           | image-timeout: must be a positive duration
      --image-timeout=soon         | image-timeout: must be a positive duration
      --provider=tpu               | provider: must be cpu (cuda and tensorrt are not supported yet), got 'tpu'
      --priority-aging-seconds=0   | priority-aging-seconds: must be a positive number, got '0'
      --max-batched-tokens=0       | max-batched-tokens: must be an integer in 1..
      --max-waiting-requests=-1    | max-waiting-requests: must be an integer in 1..
      --max-itl-ms=-5              | max-itl-ms: must be off, milliseconds in 1..60000, or a multiple of the decode step in (1, 100] such as 1.25x, got '-5' (from --max-itl-ms)
      --max-itl-ms=60001           | max-itl-ms: must be off, milliseconds
      --max-itl-ms=1x              | max-itl-ms: must be off, milliseconds
      --max-itl-ms=fastx           | max-itl-ms: must be off, milliseconds
      --max-itl-ms=auto            | max-itl-ms: must be off, milliseconds
      --max-itl-ms=2fx             | max-itl-ms: must be off, milliseconds
      --max-itl-ms=0x1p1x          | max-itl-ms: must be off, milliseconds
      --max-itl-ms=101x            | max-itl-ms: must be off, milliseconds
      --tls-cert=/no/such/cert.pem | tls-cert: file /no/such/cert.pem not found (from --tls-cert)
      --config=/no/such/node.conf  | config: file /no/such/node.conf not found (from --config)
      --http-request-timeout=never | http-request-timeout: must be a positive duration
      --http-idle-timeout=0        | http-idle-timeout: must be a positive duration
      --http-max-connections=0     | http-max-connections: must be an integer in 1..
      --http-max-unsent-tokens=0   | http-max-unsent-tokens: must be an integer in 1..
      --http-allowed-hosts=http://x.example | http-allowed-hosts: must be a comma list of host names
      --http-allowed-hosts=x.example:80 | http-allowed-hosts: must be a comma list of host names
      --http-cors-origins=app.example | http-cors-origins: must be a comma list of origins
      --http-cors-origins=https://app.example/path | http-cors-origins: must be a comma list of origins
      --nope=1                     | unknown option --nope
      --port                       | port: missing value
      """)
  void parse_badFlag_messageNamesTheOption(String flag, String expected) {
    String message = error(flag);
    assertTrue(message.startsWith(expected), "expected '" + expected + "…', got '" + message + "'");
  }

  @Test
  void parse_httpFace_defaultsAndValues() {
    NodeConfig d = NodeConfig.defaults();
    assertNull(d.httpRequestTimeout(), "no request timeout by default");
    assertEquals(Duration.ofSeconds(30), d.httpIdleTimeout());
    assertEquals(1024, d.httpMaxConnections());
    assertEquals(1024, d.httpMaxUnsentTokens());
    assertTrue(d.httpAllowedHosts().isEmpty());
    assertTrue(d.httpCorsOrigins().isEmpty());
    NodeConfig c = NodeConfig.parse(new String[] {"--http-request-timeout=2m", "--http-idle-timeout=500ms", "--http-max-connections=10",
        "--http-max-unsent-tokens=64", "--http-allowed-hosts= Node.Example ,[fd00::1],*", "--http-cors-origins=https://App.example:8443,*"}, Map.of());
    assertEquals(Duration.ofMinutes(2), c.httpRequestTimeout());
    assertEquals(Duration.ofMillis(500), c.httpIdleTimeout());
    assertEquals(10, c.httpMaxConnections());
    assertEquals(64, c.httpMaxUnsentTokens());
    assertEquals(java.util.List.of("node.example", "[fd00::1]", "*"), c.httpAllowedHosts());
    assertEquals(java.util.List.of("https://app.example:8443", "*"), c.httpCorsOrigins());
    assertNull(NodeConfig.parse(new String[0], Map.of("SPHINX_HTTP_REQUEST_TIMEOUT", "OFF")).httpRequestTimeout());
  }

  @Test
  void parse_badValueFromEnvironmentOrFile_saysWhereItCameFrom() throws IOException {
    assertTrue(error(new String[0], Map.of("SPHINX_KV_BLOCK_SIZE", "24")).endsWith("got '24' (from SPHINX_KV_BLOCK_SIZE)"));
    Path config = file("bad.properties", "kv-block-size=3\n");
    String message = error("--config=" + config);
    assertTrue(message.startsWith("kv-block-size: must be a power of two"), message);
    assertTrue(message.endsWith("(from " + config + ")"), message);
  }

  @Test
  void parse_unknownKeyInFile_namesKeyAndFile() throws IOException {
    Path config = file("unknown.properties", "kv_blocks=3\n");
    String message = error("--config=" + config);
    assertTrue(message.startsWith("config: unknown option 'kv_blocks' in " + config), message);
  }

  @Test
  void parse_onlyOneOfCertAndKey_namesTheMissingOne() throws IOException {
    Path cert = file("only-cert.pem", "x");
    assertTrue(error("--tls-cert=" + cert).startsWith("tls-key: required when tls-cert is set (from --tls-cert)"));
    assertTrue(error(new String[0], Map.of("SPHINX_TLS_KEY", cert.toString())).startsWith("tls-cert: required when tls-key is set (from SPHINX_TLS_KEY)"));
  }

  @Test
  void parse_securityOptions_defaultsAndValues() throws IOException {
    NodeConfig d = NodeConfig.defaults();
    assertEquals(NodeConfig.Plaintext.LOOPBACK, d.plaintext());
    assertEquals(NodeConfig.Reflection.OPEN, d.reflection());
    assertFalse(d.authenticates());
    assertFalse(d.shareCaches());
    assertEquals(64, d.maxTurns());
    assertEquals(Duration.ofSeconds(20), d.permitKeepAlive());
    Path tenants = file("t.properties", "a.methods=*\n");
    NodeConfig c = NodeConfig.parse(new String[] {"--tenants=" + tenants, "--reflection=off", "--share-caches=true",
        "--plaintext=all-interfaces", "--max-connection-idle=2m"}, Map.of());
    assertTrue(c.authenticates());
    assertEquals(NodeConfig.Reflection.OFF, c.reflection());
    assertTrue(c.shareCaches());
    assertEquals(NodeConfig.Plaintext.ALL_INTERFACES, c.plaintext());
    assertEquals(Duration.ofMinutes(2), c.maxConnectionIdle());
  }

  @Test
  void parse_badSecurityOptions_failNamingThem() throws IOException {
    Path jwks = file("jwks.json", "{\"keys\":[]}");
    Path ca = file("ca.pem", "x");
    assertEquals("tls-cert: required, plaintext is off (from --plaintext)", error("--plaintext=off"));
    assertEquals("jwt-issuer: required when jwt-jwks is set (from --jwt-jwks)", error("--jwt-jwks=" + jwks));
    assertEquals("jwt-audience: required when jwt-jwks is set (from --jwt-jwks)", error("--jwt-jwks=" + jwks, "--jwt-issuer=i"));
    assertTrue(error("--tls-client-ca=" + ca).startsWith("tls-client-ca: needs tls-cert and tls-key"));
    assertTrue(error("--reflection=maybe").startsWith("reflection: must be open, authenticated or off, got 'maybe'"));
    assertTrue(error("--share-caches=yes").startsWith("share-caches: must be true or false"));
    assertTrue(error("--plaintext=yes").startsWith("plaintext: must be loopback, all-interfaces or off"));
    assertTrue(error("--max-turns=0").startsWith("max-turns: must be an integer in 1.."));
  }

  /** /metrics is plaintext HTTP: it listens where plaintext may unless --metrics-bind says otherwise. */
  @Test
  void metricsAddress_followsThePlaintextPolicyUnlessWidened() throws IOException {
    java.net.InetAddress loopback = java.net.InetAddress.getLoopbackAddress();
    assertEquals(loopback, NodeConfig.parse(new String[] {}, Map.of()).metricsAddress());
    assertTrue(NodeConfig.parse(new String[] {"--plaintext=all-interfaces"}, Map.of()).metricsAddress().isAnyLocalAddress());
    Path cert = file("metrics-cert.pem", "x");
    Path key = file("metrics-key.pem", "y");
    assertEquals(loopback, NodeConfig.parse(new String[] {"--tls-cert=" + cert, "--tls-key=" + key}, Map.of()).metricsAddress(),
        "a TLS node's API listens everywhere, its plaintext metrics do not");
    assertTrue(NodeConfig.parse(new String[] {"--metrics-bind=all-interfaces"}, Map.of()).metricsAddress().isAnyLocalAddress());
    assertEquals(loopback, NodeConfig.parse(new String[] {"--plaintext=all-interfaces", "--metrics-bind=loopback"}, Map.of()).metricsAddress());
    assertEquals("10.1.2.3", NodeConfig.parse(new String[] {"--metrics-bind=10.1.2.3"}, Map.of()).metricsAddress().getHostAddress());
    assertEquals(java.net.InetAddress.ofLiteral("fd00::2"),
        NodeConfig.parse(new String[] {}, Map.of("SPHINX_METRICS_BIND", "fd00::2")).metricsAddress());
    String e = error("--metrics-bind=metrics.example.com"); // an address, never a name looked up at start
    assertTrue(e.startsWith("metrics-bind: must be loopback, all-interfaces or an IP address, got 'metrics.example.com'"), e);
  }
}
