package sphinxserve.server.config;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import picocli.CommandLine;
import sphinxserve.runtime.chat.ChatTemplateLimits;
import sphinxserve.runtime.chat.ToolCallFormat;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.scheduler.EngineConfig;
import sphinxserve.scheduler.ItlTarget;
import sphinxserve.server.image.ImageCacheConfig;
import sphinxserve.server.image.ImageLimits;

/**
 * The node's configuration: command-line flags ({@code --name=value} or {@code --name value}) over environment
 * variables ({@code SPHINX_NAME}, upper case, dashes as underscores) over a configuration file over defaults.
 * {@link #usage()} lists every option.
 *
 * <p>The file, named by {@code --config FILE} (or {@code SPHINX_CONFIG}), is Java {@code .properties}: one
 * {@code name=value} per line with the flags' names, {@code #} comments; an unknown name is an error. Every
 * value is validated at start; a bad one throws {@link IllegalArgumentException} whose message starts with the
 * option's name and says where the value came from (flag, variable, file), e.g.
 * {@code kv-block-size: must be a power of two between 1 and 256, got 7 (from --kv-block-size)}.
 *
 * @param port TCP port to listen on; 0 picks a free one
 * @param httpPort TCP port of the OpenAI-compatible HTTP API; 0 picks a free one, -1 = off
 * @param httpRequestTimeout longest an HTTP request may run from its arrival (504 / an error event after); null = no limit
 * @param httpIdleTimeout how long an HTTP connection may take to send a whole request, or stay idle between requests
 * @param httpMaxConnections most open HTTP connections; more are closed at once
 * @param httpMaxUnsentTokens most generated tokens a streaming HTTP request may hold for a client that stopped reading
 *     (past Netty's write buffer) before the request is ended
 * @param httpAllowedHosts {@code Host} names accepted besides the node's own on a node without authentication
 *     ({@code *}: any)
 * @param httpCorsOrigins origins whose cross-origin browser requests are allowed ({@code *}: any)
 * @param bundle a bundle directory, or {@code embedded:<name>} to build the trained model or preset of that name into
 *     {@code bundleCache} on first use
 * @param bundleCache where embedded bundles, and bundles of {@code model} folders, are built
 * @param model a Hugging Face or Meta-layout LLaMA checkpoint folder to serve (its bundle built into
 *     {@code bundleCache} on first start, keyed by the files' content); null serves {@code bundle}
 * @param quantize how {@code model}'s decoder weights are stored: none, int8 or int4
 * @param maxContext positions served of {@code model}; 0 = the model's maximum
 * @param ortThreads ONNX Runtime intra-op threads; 0 = one per core
 * @param int4WideSession whether an int4 bundle's decoder also gets its wide-batch session (RuntimeOptions)
 * @param provider ONNX Runtime execution provider; only CPU is accepted for now (the KV pools are host memory)
 * @param deviceId GPU ordinal for the CUDA and TensorRT providers (refused for now; see {@code provider})
 * @param imageThreads threads that decode and preprocess images
 * @param imageCacheBytes most bytes of image embeddings cached
 * @param maxImageBytes most encoded bytes per image
 * @param maxImagePixels most declared pixels per image
 * @param maxImageSide most pixels on either side of an image
 * @param maxImageJobs most images in decode/encode at once; more get RESOURCE_EXHAUSTED
 * @param maxVisionBatch most images per vision-encoder call
 * @param imageTimeout longest an image's decode, preprocessing and encoding may take; RESOURCE_EXHAUSTED after
 * @param maxMessageBytes most bytes of one inbound gRPC message
 * @param tlsCert PEM certificate chain to serve TLS with; null = plaintext
 * @param tlsKey PEM (PKCS#8) private key of {@code tlsCert}; null = plaintext
 * @param kvBlocks KV-cache blocks; 0 = as many as {@code kvCacheMemory} holds (set, it overrides that)
 * @param kvCacheMemory the KV pool's memory budget when {@code kvBlocks} is 0 (see {@link KvPoolSizing})
 * @param kvBlockSize tokens per KV-cache block (a power of two, at most 256)
 * @param maxBatchedTokens the engine's token budget per step (decodes plus prefill chunks)
 * @param itlTarget latency target of a step that carries decodes: prefill chunks beside them are cut to what it
 *     leaves by the measured step costs
 * @param maxWaitingRequests most requests queued in the scheduler; more get RESOURCE_EXHAUSTED
 * @param maxRunningRequests most requests decoding at once
 * @param priorityAgingSeconds a waiting request gains one priority level per this many seconds
 * @param drainSeconds how long shutdown waits for in-flight calls before cancelling them
 * @param metricsPort TCP port of the Prometheus scrape endpoint ({@code /metrics}); 0 turns it off
 * @param metricsBind where that endpoint listens: {@code loopback}, {@code all-interfaces}, an IP address, or empty to
 *     follow the plaintext policy ({@link #metricsAddress})
 * @param maxConnectionAgeSeconds how long a client connection may live before the node asks the client to
 *     reconnect (GOAWAY; in-flight calls get {@code drainSeconds} to finish), so clients re-resolve DNS and
 *     spread over nodes added since; 0 = forever
 * @param tenants the tenants file (hashed API keys, methods, limits); null with no JWT = no authentication
 * @param reflection who may use server reflection
 * @param shareCaches whether tenants share the prefix and image caches (single-tenant deployments only)
 * @param tlsClientCa PEM certificates of the CAs whose client certificates are accepted (mutual TLS, client
 *     certificate required); null = no client certificates asked for
 * @param tlsReloadSeconds how often the TLS files are checked for changes and reloaded; 0 = never
 * @param maxTurns most messages in one Generate request
 * @param maxPromptChars most characters of text over all of a request's messages
 * @param maxRenderedPromptChars most characters of the prompt a chat template renders (checked before tokenising)
 * @param templateTimeout longest wall time of one chat-template render
 * @param templateMaxIterations most steps of one chat-template render (loop iterations, range() items, nodes)
 * @param toolCallFormat how the model writes tool calls, overriding what its chat template shows; null = auto
 *     (recognised from the template)
 * @param maxStreamsPerConnection most concurrent calls on one HTTP/2 connection
 * @param permitKeepAlive the shortest client keepalive-ping interval tolerated (more often: GOAWAY)
 * @param maxConnectionIdle how long a connection without calls is kept open
 * @param maxMetadataBytes most bytes of a call's headers
 * @param jwtJwks a JWKS file of the identity provider's public keys; set: bearer JWTs are accepted
 * @param jwtIssuer the {@code iss} JWTs must carry (required with {@code jwtJwks})
 * @param jwtAudience the {@code aud} JWTs must include (required with {@code jwtJwks})
 * @param jwtTenantClaim the claim naming the tenant
 * @param plaintext where the node may serve without TLS
 * @param maxChoices most choices ({@code n}, times the prompts of a {@code /v1/completions} list) in one HTTP request
 */
public record NodeConfig(
    int port,
    int httpPort,
    Duration httpRequestTimeout,
    Duration httpIdleTimeout,
    int httpMaxConnections,
    int httpMaxUnsentTokens,
    List<String> httpAllowedHosts,
    List<String> httpCorsOrigins,
    String bundle,
    Path bundleCache,
    Path model,
    String quantize,
    int maxContext,
    int ortThreads,
    boolean int4WideSession,
    RuntimeOptions.ExecutionProvider provider,
    int deviceId,
    int imageThreads,
    long imageCacheBytes,
    int maxImageBytes,
    long maxImagePixels,
    int maxImageSide,
    int maxImageJobs,
    int maxVisionBatch,
    Duration imageTimeout,
    int maxMessageBytes,
    Path tlsCert,
    Path tlsKey,
    int kvBlocks,
    KvCacheMemory kvCacheMemory,
    int kvBlockSize,
    int maxBatchedTokens,
    ItlTarget itlTarget,
    int maxWaitingRequests,
    int maxRunningRequests,
    double priorityAgingSeconds,
    int drainSeconds,
    int metricsPort,
    String metricsBind,
    int maxConnectionAgeSeconds,
    Path tenants,
    Reflection reflection,
    boolean shareCaches,
    Path tlsClientCa,
    int tlsReloadSeconds,
    int maxTurns,
    int maxPromptChars,
    long maxRenderedPromptChars,
    Duration templateTimeout,
    long templateMaxIterations,
    ToolCallFormat toolCallFormat,
    int maxStreamsPerConnection,
    Duration permitKeepAlive,
    Duration maxConnectionIdle,
    int maxMetadataBytes,
    Path jwtJwks,
    String jwtIssuer,
    String jwtAudience,
    String jwtTenantClaim,
    Plaintext plaintext,
    int maxChoices) {

  /** Where the node may serve plaintext (without {@code --tls-cert}); ignored with TLS. */
  public enum Plaintext {
    /** Only on the loopback interface (the default: a development node is not reachable from the network). */
    LOOPBACK,
    /** On every interface: chosen explicitly, for a node behind a TLS-terminating proxy or inside a mesh. */
    ALL_INTERFACES,
    /** Never: the node refuses to start without TLS. */
    OFF
  }

  /** Who may use server reflection. */
  public enum Reflection {
    /** Anyone, like health. */
    OPEN,
    /** Authenticated callers (any tenant). */
    AUTHENTICATED,
    /** Nobody: the service is not registered. */
    OFF
  }

  /** The prefix of {@link #bundle} values that name a preset built on first use. */
  public static final String EMBEDDED = "embedded:";

  /** The option naming the configuration file (a flag or {@code SPHINX_CONFIG}; not valid inside the file). */
  static final String CONFIG = "config";

  /** Largest KV block size accepted (tokens). */
  private static final int MAX_KV_BLOCK_SIZE = 256;

  /** Option names, defaults and help, in {@link #usage()} order; an empty default means "not set". */
  private static final String[][] OPTIONS = {
      {CONFIG, "", "a .properties file of name=value lines (these names); flags and SPHINX_* override it"},
      {"port", "50051", "TCP port; 0 picks a free one"},
      {"http-port", "8080", "TCP port of the OpenAI-compatible HTTP API (same TLS and plaintext rules); 0 picks a free one, off = none"},
      {"http-request-timeout", "off", "longest an HTTP request may run from its arrival (ms/s/m); past it: 504, or an error event once streaming; off = no limit"},
      {"http-idle-timeout", "30s", "an HTTP connection must send each whole request within this (ms/s/m) and is closed after this long idle between requests"},
      {"http-max-connections", "1024", "most open HTTP connections; more are closed at once"},
      {"http-max-unsent-tokens", "1024", "a streaming HTTP request whose client stopped reading is ended when this many tokens wait past the write buffer"},
      {"http-allowed-hosts", "", "comma list of Host names accepted besides the node's own (localhost, loopback, bind address) when it does not authenticate; * = any"},
      {"http-cors-origins", "", "comma list of origins (scheme://host[:port]) allowed to call the HTTP API from a browser on another origin; * = any"},
      {"tls-cert", "", "PEM certificate chain; with --tls-key serves TLS, plaintext when neither is set"},
      {"tls-key", "", "PEM (PKCS#8) private key of --tls-cert"},
      {"plaintext", "loopback", "without TLS: loopback (listen on 127.0.0.1 only), all-interfaces (explicit), off (TLS required)"},
      {"tls-client-ca", "", "PEM CA certificates; set: mutual TLS, every client must present a certificate they issued"},
      {"tls-reload-seconds", "60", "how often the TLS files are checked and reloaded when changed; 0 = never"},
      {"bundle", "embedded:sphinx-tiny", "bundle directory, or embedded:<sphinx-tiny|test|tiny|bench>: the trained model in the jar, or a random-weight preset (built into --bundle-cache on first use)"},
      {"bundle-cache", "~/.cache/sphinx-serve/bundles", "where embedded bundles and bundles of --model folders are built"},
      {"model", "", "a Hugging Face (LlamaForCausalLM) or Meta-layout model folder to serve instead of --bundle; built into --bundle-cache on first start (docs/MODELS.md)"},
      {"quantize", "none", "--model's decoder weights: none (float32), int8 or int4"},
      {"max-context", "0", "positions served of --model (prompt + answer); 0 = the model's max_position_embeddings"},
      {"provider", "cpu", "ONNX Runtime execution provider: cpu (cuda and tensorrt are refused until the KV pools can live on the GPU)"},
      {"device-id", "0", "GPU ordinal for cuda / tensorrt (not supported yet)"},
      {"ort-threads", "0", "ONNX Runtime intra-op threads; 0 = one per core"},
      {"int4-wide-session", "true", "an int4 bundle's decoder also runs as float32-compute kernels for prefill and batches of 10+ rows: faster there, for a second copy of the int4 weights and a float32 output head in memory"},
      {"image-threads", "2", "threads decoding and preprocessing images"},
      {"image-cache-bytes", "1g", "bytes of image embeddings kept (k/m/g suffixes)"},
      {"max-image-bytes", "10m", "most encoded bytes per image"},
      {"max-image-pixels", "36000000", "most pixels (width × height) per image, checked before decoding"},
      {"max-image-side", "16384", "most pixels on either side of an image"},
      {"max-image-jobs", "8", "most images decoding/encoding at once; more get RESOURCE_EXHAUSTED"},
      {"max-vision-batch", "8", "most images per vision-encoder call"},
      {"image-timeout", "30s", "longest one image's decode + encode may take (ms/s/m); RESOURCE_EXHAUSTED after"},
      {"max-message-bytes", "16m", "most bytes of one inbound gRPC message"},
      {"max-metadata-bytes", "8k", "most bytes of one call's headers"},
      {"max-turns", "64", "most messages in one Generate request"},
      {"max-prompt-chars", "65536", "most characters of text over all of a request's messages"},
      {"max-rendered-prompt-chars", "auto", "most characters of the prompt the chat template renders, checked before tokenising; auto = 4 x --max-prompt-chars"},
      {"template-timeout", "2s", "longest one chat-template render may take (ms/s/m); INVALID_ARGUMENT on messages after"},
      {"template-max-iterations", "100000", "most steps of one chat-template render: loop iterations (each text, expression or tag rendered), range() items, filter calls"},
      {"tool-call-format", "auto", "how the model writes tool calls: auto (recognised from its chat template), hermes (<tool_call> blocks), llama-json (LLaMA 3.1+ JSON) or none (answers are never parsed for calls)"},
      {"max-streams-per-connection", "100", "most concurrent calls on one HTTP/2 connection"},
      {"permit-keepalive", "20s", "shortest client keepalive-ping interval tolerated; more often gets GOAWAY (ms/s/m)"},
      {"max-connection-idle", "15m", "a connection without calls for this long is closed (ms/s/m)"},
      // 0.5: half of what the heap and the weights leave; the other half is ONNX Runtime's working memory, the JVM's
      // off-heap memory and the page cache, which nothing measures before the pool is chosen (KvPoolSizing).
      {"kv-cache-memory", "0.5", "KV pool budget: a fraction (0,1] of the memory left after the heap and the model's weights (cgroup limit, else physical memory), or bytes (k/m/g, e.g. 4g)"},
      {"kv-blocks", "auto", "KV-cache blocks; auto = as many as --kv-cache-memory holds; a number overrides --kv-cache-memory"},
      {"kv-block-size", "16", "tokens per KV-cache block: a power of two, 1..256"},
      {"max-batched-tokens", "512", "the engine's token budget per step (decodes + prefill chunks)"},
      {"max-itl-ms", "off", "latency target of a step that carries decodes: prefill chunks beside them are cut to fit it by the measured step costs (Sarathi-Serve): milliseconds, or a multiple of the measured decode-only step such as 1.25x; off = only --max-batched-tokens bounds a step (best throughput; a step beside a long prompt takes its whole chunk's time)"},
      {"max-waiting-requests", "256", "most requests queued for the engine; more get RESOURCE_EXHAUSTED"},
      {"max-running-requests", "64", "most requests decoding at once"},
      {"priority-aging-seconds", "10", "a waiting request gains one priority level per this many seconds"},
      {"drain-seconds", "30", "how long shutdown waits for in-flight calls"},
      {"metrics-port", "9464", "Prometheus scrape endpoint (/metrics); 0 = off"},
      {"metrics-bind", "", "where /metrics (plaintext HTTP) listens: loopback, all-interfaces or an IP address; unset = all interfaces with --plaintext=all-interfaces, else loopback"},
      {"max-connection-age-seconds", "0", "GOAWAY a client connection after this long so clients re-resolve DNS; 0 = never"},
      {"tenants", "", "tenants file: hashed API keys, allowed methods, limits (docs/SECURITY.md); unset = no authentication"},
      {"jwt-jwks", "", "JWKS file of the identity provider's public keys; set: bearer JWTs are accepted (re-read on change)"},
      {"jwt-issuer", "", "the iss claim JWTs must carry (required with --jwt-jwks)"},
      {"jwt-audience", "", "an aud value JWTs must include (required with --jwt-jwks)"},
      {"jwt-tenant-claim", "tenant", "the JWT claim naming the tenant"},
      {"reflection", "open", "server reflection: open, authenticated or off"},
      {"share-caches", "false", "tenants share prefix and image caches (true only for single-tenant deployments)"},
      {"max-choices", "8", "most choices in one OpenAI request: n, times the prompts of a /v1/completions list (each choice is its own sequence)"},
  };

  /** The defaults. */
  public static NodeConfig defaults() {
    return parse(new String[0], Map.of());
  }

  /**
   * Flags in {@code args} over variables in {@code env} over the file {@code --config} / {@code SPHINX_CONFIG}
   * names over defaults. Unknown options, missing values, unreadable files and invalid values throw
   * {@link IllegalArgumentException} naming the option.
   */
  public static NodeConfig parse(String[] args, Map<String, String> env) {
    Map<String, String> flags = parseFlags(args);
    Values values = new Values();
    for (String[] o : OPTIONS) values.put(o[0], o[1], "default");
    String configFile = flags.containsKey(CONFIG) ? flags.get(CONFIG) : env.get(envName(CONFIG));
    if (configFile != null && !configFile.isBlank()) {
      String source = flags.containsKey(CONFIG) ? "--" + CONFIG : envName(CONFIG);
      Path file = Path.of(expandHome(configFile.trim()));
      values.put(CONFIG, file.toString(), source);
      Properties properties = new Properties();
      try (Reader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
        properties.load(reader);
      } catch (java.nio.file.NoSuchFileException e) {
        throw new IllegalArgumentException(CONFIG + ": file " + file + " not found (from " + source + ")");
      } catch (IOException | IllegalArgumentException e) {
        throw new IllegalArgumentException(CONFIG + ": cannot read " + file + ": " + e.getMessage());
      }
      for (String name : properties.stringPropertyNames()) {
        if (option(name) == null || name.equals(CONFIG)) {
          throw new IllegalArgumentException(CONFIG + ": unknown option '" + name + "' in " + file + "\n" + usage());
        }
        values.put(name, properties.getProperty(name), file.toString());
      }
    }
    for (String[] o : OPTIONS) {
      String fromEnv = env.get(envName(o[0]));
      if (fromEnv != null && !o[0].equals(CONFIG)) values.put(o[0], fromEnv, envName(o[0]));
    }
    flags.forEach((name, value) -> values.put(name, value, "--" + name));
    return values.build();
  }

  /**
   * The flags in {@code args}, parsed by picocli over the option table (the client's CLI uses it too): both
   * {@code --name value} and {@code --name=value}; an option given twice takes the later value.
   */
  private static Map<String, String> parseFlags(String[] args) {
    CommandLine.Model.CommandSpec spec = CommandLine.Model.CommandSpec.create().name("sphinx-serve");
    for (String[] o : OPTIONS) {
      spec.addOption(CommandLine.Model.OptionSpec.builder("--" + o[0]).paramLabel("VALUE").type(String.class)
          .description(o[2]).build());
    }
    spec.parser().overwrittenOptionsAllowed(true); // a later flag wins, as in a shell script that adds overrides
    CommandLine.ParseResult result;
    try {
      result = new CommandLine(spec).parseArgs(args);
    } catch (CommandLine.UnmatchedArgumentException e) {
      String arg = e.getUnmatched().isEmpty() ? "" : e.getUnmatched().getFirst();
      String name = arg.startsWith("--") ? arg.substring(2).replaceFirst("=.*", "") : arg;
      throw new IllegalArgumentException((arg.startsWith("--") ? "unknown option --" + name : "unexpected argument '" + arg + "'")
          + "\n" + usage());
    } catch (CommandLine.MissingParameterException e) {
      String name = e.getMissing().isEmpty() || !(e.getMissing().getFirst() instanceof CommandLine.Model.OptionSpec option)
          ? "?" : option.longestName().substring(2);
      throw new IllegalArgumentException(name + ": missing value (--" + name + "=VALUE)");
    } catch (CommandLine.ParameterException e) {
      throw new IllegalArgumentException(e.getMessage() + "\n" + usage());
    }
    Map<String, String> flags = new LinkedHashMap<>();
    for (CommandLine.Model.OptionSpec option : result.matchedOptions()) {
      flags.put(option.longestName().substring(2), option.getValue());
    }
    return flags;
  }

  /** One line per option: name, default, what it does. */
  public static String usage() {
    StringBuilder sb = new StringBuilder("options (flag --name=value, environment variable SPHINX_<NAME>, or name=value in --config FILE):\n");
    for (String[] o : OPTIONS) sb.append(String.format("  --%-26s %-16s %s%n", o[0], o[1].isEmpty() ? "-" : o[1], o[2]));
    return sb.toString();
  }

  /** Whether the node serves TLS (both {@link #tlsCert} and {@link #tlsKey} are set). */
  public boolean tls() {
    return tlsCert != null;
  }

  /**
   * Where {@code /metrics} listens. It is plaintext HTTP whatever {@code --tls-cert} says, so unless
   * {@code --metrics-bind} widens it, it follows the plaintext rule: every interface only with
   * {@code --plaintext=all-interfaces}, loopback otherwise (a TLS node's API listens everywhere, its metrics do not).
   */
  public java.net.InetAddress metricsAddress() {
    return switch (metricsBind) {
      case "" -> plaintext == Plaintext.ALL_INTERFACES ? anyAddress() : java.net.InetAddress.getLoopbackAddress();
      case "loopback" -> java.net.InetAddress.getLoopbackAddress();
      case "all-interfaces" -> anyAddress();
      default -> java.net.InetAddress.ofLiteral(metricsBind); // checked at parse
    };
  }

  private static java.net.InetAddress anyAddress() {
    return new java.net.InetSocketAddress(0).getAddress();
  }

  /** Whether the node asks every client for a certificate (mutual TLS). */
  public boolean mutualTls() {
    return tlsClientCa != null;
  }

  /** Whether calls must authenticate (a tenants file or a JWKS file is set). */
  public boolean authenticates() {
    return tenants != null || jwtJwks != null;
  }

  /** The image pipeline's part of this configuration. */
  public ImageCacheConfig imageCacheConfig() {
    return new ImageCacheConfig(imageCacheBytes, new ImageLimits(maxImageBytes, maxImagePixels, maxImageSide),
        imageThreads, maxImageJobs, maxVisionBatch, imageTimeout);
  }

  /** The engine's part of this configuration, over the engine's defaults for everything the node does not set. */
  public EngineConfig engineConfig() {
    return EngineConfig.defaults()
        .withMaxNumSeqs(maxRunningRequests)
        .withMaxWaiting(maxWaitingRequests)
        .withMaxNumBatchedTokens(maxBatchedTokens)
        .withItlTarget(itlTarget)
        .withPriorityAgingSeconds(priorityAgingSeconds);
  }

  /** The budgets of one chat-template render. */
  public ChatTemplateLimits chatTemplateLimits() {
    return ChatTemplateLimits.DEFAULTS.withMaxOutputChars(maxRenderedPromptChars).withMaxIterations(templateMaxIterations)
        .withTimeout(templateTimeout);
  }

  /** How ONNX Runtime sessions are opened. */
  public RuntimeOptions runtimeOptions() {
    return new RuntimeOptions(provider, deviceId, ortThreads, false, true, int4WideSession);
  }

  private static String[] option(String name) {
    for (String[] o : OPTIONS) if (o[0].equals(name)) return o;
    return null;
  }

  private static String envName(String name) {
    return "SPHINX_" + name.toUpperCase(Locale.ROOT).replace('-', '_');
  }

  private static String expandHome(String path) {
    return path.startsWith("~/") ? System.getProperty("user.home") + path.substring(1) : path;
  }

  /** Raw values with where each came from; {@link #build} converts and validates them. */
  private static final class Values {
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Map<String, String> sources = new LinkedHashMap<>();

    void put(String name, String value, String source) {
      values.put(name, value);
      sources.put(name, source);
    }

    NodeConfig build() {
      Path tlsCert = file("tls-cert");
      Path tlsKey = file("tls-key");
      if ((tlsCert == null) != (tlsKey == null)) {
        String missing = tlsCert == null ? "tls-cert" : "tls-key";
        String set = tlsCert == null ? "tls-key" : "tls-cert";
        throw new IllegalArgumentException(missing + ": required when " + set + " is set (from " + sources.get(set) + "); set both or neither");
      }
      int kvBlockSize = intIn("kv-block-size", 1, MAX_KV_BLOCK_SIZE);
      if (Integer.bitCount(kvBlockSize) != 1) fail("kv-block-size", "must be a power of two between 1 and " + MAX_KV_BLOCK_SIZE);
      return new NodeConfig(
          intIn("port", 0, 65535),
          text("http-port").equalsIgnoreCase("off") ? -1 : intIn("http-port", 0, 65535),
          text("http-request-timeout").equalsIgnoreCase("off") ? null : duration("http-request-timeout"),
          duration("http-idle-timeout"),
          intIn("http-max-connections", 1, 1 << 20),
          intIn("http-max-unsent-tokens", 1, 1 << 20),
          allowedHosts(),
          corsOrigins(),
          nonEmpty("bundle"),
          Path.of(expandHome(nonEmpty("bundle-cache"))),
          model(),
          quantize(),
          intIn("max-context", 0, 1 << 24),
          intIn("ort-threads", 0, 1024),
          bool("int4-wide-session"),
          provider(),
          intIn("device-id", 0, 1024),
          intIn("image-threads", 1, 1024),
          size("image-cache-bytes", 0, Long.MAX_VALUE),
          (int) size("max-image-bytes", 1, Integer.MAX_VALUE),
          size("max-image-pixels", 1, Long.MAX_VALUE),
          intIn("max-image-side", 1, Integer.MAX_VALUE),
          intIn("max-image-jobs", 1, 1 << 16),
          intIn("max-vision-batch", 1, 1024),
          duration("image-timeout"),
          (int) size("max-message-bytes", 1024, Integer.MAX_VALUE),
          tlsCert,
          tlsKey,
          kvBlocks(),
          kvCacheMemory(),
          kvBlockSize,
          intIn("max-batched-tokens", 1, Integer.MAX_VALUE),
          itlTarget(),
          intIn("max-waiting-requests", 1, Integer.MAX_VALUE),
          intIn("max-running-requests", 1, Integer.MAX_VALUE),
          positiveDouble("priority-aging-seconds"),
          intIn("drain-seconds", 0, 3600),
          intIn("metrics-port", 0, 65535),
          metricsBind(),
          intIn("max-connection-age-seconds", 0, Integer.MAX_VALUE),
          file("tenants"),
          reflection(),
          bool("share-caches"),
          clientCa(tlsCert),
          intIn("tls-reload-seconds", 0, 86400),
          intIn("max-turns", 1, 1 << 20),
          intIn("max-prompt-chars", 1, Integer.MAX_VALUE),
          maxRenderedPromptChars(),
          duration("template-timeout"),
          intIn("template-max-iterations", 1, Integer.MAX_VALUE),
          toolCallFormat(),
          intIn("max-streams-per-connection", 1, Integer.MAX_VALUE),
          duration("permit-keepalive"),
          duration("max-connection-idle"),
          (int) size("max-metadata-bytes", 1024, 1 << 20),
          file("jwt-jwks"),
          requiredWith("jwt-issuer", "jwt-jwks"),
          requiredWith("jwt-audience", "jwt-jwks"),
          nonEmpty("jwt-tenant-claim"),
          plaintext(tlsCert),
          intIn("max-choices", 1, 1024));
    }

    private String text(String name) {
      return values.get(name).trim();
    }

    private IllegalArgumentException fail(String name, String problem) {
      throw new IllegalArgumentException(name + ": " + problem + ", got '" + values.get(name) + "' (from " + sources.get(name) + ")");
    }

    private String nonEmpty(String name) {
      if (text(name).isEmpty()) fail(name, "must not be empty");
      return text(name);
    }

    /** {@code --model}: a directory, and not together with an explicitly set {@code --bundle}. */
    private Path model() {
      if (text("model").isEmpty()) return null;
      if (!sources.get("bundle").equals("default")) {
        throw new IllegalArgumentException("model: serves instead of --bundle; set one of them (bundle from " + sources.get("bundle")
            + ", model from " + sources.get("model") + ")");
      }
      Path path = Path.of(expandHome(text("model")));
      if (!Files.isDirectory(path)) {
        throw new IllegalArgumentException("model: directory " + path + " not found (from " + sources.get("model") + ")");
      }
      return path;
    }

    private String quantize() {
      String q = text("quantize").toLowerCase(Locale.ROOT);
      if (!List.of("none", "int8", "int4").contains(q)) fail("quantize", "must be none, int8 or int4");
      if (!q.equals("none") && text("model").isEmpty()) fail("quantize", "applies to --model only (a bundle's weights are fixed when it is built)");
      return q;
    }

    /** {@code --max-rendered-prompt-chars}: a count, or auto = 4 x --max-prompt-chars (room for the template's own text). */
    private long maxRenderedPromptChars() {
      if (text("max-rendered-prompt-chars").equalsIgnoreCase("auto")) {
        return 4L * intIn("max-prompt-chars", 1, Integer.MAX_VALUE);
      }
      return intIn("max-rendered-prompt-chars", 1, Integer.MAX_VALUE);
    }

    /** {@code --max-itl-ms}: milliseconds, {@code <stretch>x}, or off (0). */
    private ItlTarget itlTarget() {
      String v = text("max-itl-ms").toLowerCase(Locale.ROOT);
      if (v.equals("off") || v.equals("0")) return ItlTarget.OFF;
      try {
        if (v.matches("\\d{1,3}(\\.\\d{1,3})?x")) return ItlTarget.relative(Double.parseDouble(v.substring(0, v.length() - 1)));
        if (v.matches("\\d{1,5}") && Integer.parseInt(v) <= 60_000) return ItlTarget.millis(Integer.parseInt(v));
      } catch (IllegalArgumentException e) { // out of ItlTarget's range: refused below
      }
      throw fail("max-itl-ms", "must be off, milliseconds in 1..60000, or a multiple of the decode step in (1, 100] such as 1.25x");
    }

    /** {@code --tool-call-format}: null for auto; vLLM's parser names (llama3_json) are accepted too. */
    private ToolCallFormat toolCallFormat() {
      return switch (text("tool-call-format").toLowerCase(Locale.ROOT)) {
        case "auto" -> null;
        case "hermes" -> ToolCallFormat.HERMES;
        case "llama-json", "llama3_json", "llama3-json" -> ToolCallFormat.LLAMA3_JSON;
        case "none" -> ToolCallFormat.NONE;
        default -> throw fail("tool-call-format", "must be auto, hermes, llama-json or none");
      };
    }

    private Path file(String name) {
      if (text(name).isEmpty()) return null;
      Path path = Path.of(expandHome(text(name)));
      if (!Files.isRegularFile(path)) {
        throw new IllegalArgumentException(name + ": file " + path + " not found (from " + sources.get(name) + ")");
      }
      if (!Files.isReadable(path)) {
        throw new IllegalArgumentException(name + ": file " + path + " is not readable (from " + sources.get(name) + ")");
      }
      return path;
    }

    /**
     * Only CPU for now. The runtime can open sessions on CUDA and TensorRT, but the KV pools are host memory
     * (direct ByteBuffers): ONNX Runtime would copy every pool to the GPU and back at each step. Keeping them on the
     * device needs IoBinding through the ORT C API (DESIGN.md, "KV cache layout"), not written yet; until then a GPU
     * provider is refused rather than run that way.
     */
    private RuntimeOptions.ExecutionProvider provider() {
      return switch (text("provider").toLowerCase(Locale.ROOT)) {
        case "cpu" -> RuntimeOptions.ExecutionProvider.CPU;
        case "cuda", "tensorrt" -> throw fail("provider", "not supported yet, use cpu: the KV pools live in host memory, so"
            + " ONNX Runtime would copy every pool to the GPU and back at each step (docs/OPERATIONS.md, \"GPU\")");
        default -> throw fail("provider", "must be cpu (cuda and tensorrt are not supported yet)");
      };
    }

    /** {@code name}'s value, required (non-empty) when {@code with} is set; null when neither is. */
    private String requiredWith(String name, String with) {
      if (text(with).isEmpty()) return text(name).isEmpty() ? null : text(name);
      if (text(name).isEmpty()) {
        throw new IllegalArgumentException(name + ": required when " + with + " is set (from " + sources.get(with) + ")");
      }
      return text(name);
    }

    private Path clientCa(Path tlsCert) {
      Path ca = file("tls-client-ca");
      if (ca != null && tlsCert == null) {
        throw new IllegalArgumentException("tls-client-ca: needs tls-cert and tls-key (mutual TLS is TLS first) (from " + sources.get("tls-client-ca") + ")");
      }
      return ca;
    }

    private String metricsBind() {
      String value = text("metrics-bind");
      String lower = value.toLowerCase(Locale.ROOT);
      if (value.isEmpty() || lower.equals("loopback") || lower.equals("all-interfaces")) return lower;
      try {
        java.net.InetAddress.ofLiteral(value); // an address, never a name to look up
        return value;
      } catch (IllegalArgumentException e) {
        throw fail("metrics-bind", "must be loopback, all-interfaces or an IP address");
      }
    }

    private Plaintext plaintext(Path tlsCert) {
      Plaintext p = switch (text("plaintext").toLowerCase(Locale.ROOT)) {
        case "loopback" -> Plaintext.LOOPBACK;
        case "all-interfaces" -> Plaintext.ALL_INTERFACES;
        case "off" -> Plaintext.OFF;
        default -> throw fail("plaintext", "must be loopback, all-interfaces or off");
      };
      if (p == Plaintext.OFF && tlsCert == null) {
        throw new IllegalArgumentException("tls-cert: required, plaintext is off (from " + sources.get("plaintext") + ")");
      }
      return p;
    }

    /** Host names (no scheme, path or port), lower case, or {@code *}. */
    private List<String> allowedHosts() {
      List<String> hosts = commaList("http-allowed-hosts");
      for (String h : hosts) {
        if (!h.equals("*") && !h.matches("[a-z0-9._\\-]+|\\[[0-9a-f:.]+\\]")) {
          fail("http-allowed-hosts", "must be a comma list of host names or addresses without port or scheme (or *), not '" + h + "'");
        }
      }
      return hosts;
    }

    /** Exact origins ({@code scheme://host[:port]}, lower case, no path), or {@code *}. */
    private List<String> corsOrigins() {
      List<String> origins = commaList("http-cors-origins");
      for (String o : origins) {
        if (!o.equals("*") && !o.matches("https?://[a-z0-9._\\-]+(:[0-9]{1,5})?|https?://\\[[0-9a-f:.]+\\](:[0-9]{1,5})?")) {
          fail("http-cors-origins", "must be a comma list of origins such as https://app.example.com:8443 (scheme, host, optional port; no path), or *, not '" + o + "'");
        }
      }
      return origins;
    }

    private List<String> commaList(String name) {
      return java.util.Arrays.stream(text(name).split(",")).map(t -> t.trim().toLowerCase(Locale.ROOT)).filter(t -> !t.isEmpty()).toList();
    }

    private Reflection reflection() {
      return switch (text("reflection").toLowerCase(Locale.ROOT)) {
        case "open" -> Reflection.OPEN;
        case "authenticated" -> Reflection.AUTHENTICATED;
        case "off" -> Reflection.OFF;
        default -> throw fail("reflection", "must be open, authenticated or off");
      };
    }

    private boolean bool(String name) {
      return switch (text(name).toLowerCase(Locale.ROOT)) {
        case "true" -> true;
        case "false" -> false;
        default -> throw fail(name, "must be true or false");
      };
    }

    private int intIn(String name, int min, int max) {
      long v;
      try {
        v = Long.parseLong(text(name));
      } catch (NumberFormatException e) {
        throw fail(name, "must be an integer in " + min + ".." + max);
      }
      if (v < min || v > max) fail(name, "must be an integer in " + min + ".." + max);
      return (int) v;
    }

    private long size(String name, long min, long max) {
      long v = bytes(text(name));
      if (v < 0) fail(name, "must be a size in bytes (k/m/g suffixes, e.g. 512m)");
      if (v < min || v > max) fail(name, "must be a size in " + min + ".." + max + " bytes");
      return v;
    }

    /** {@code text} as bytes (k/m/g suffixes); -1 when it is not a size. */
    private static long bytes(String text) {
      String t = text.toLowerCase(Locale.ROOT);
      long unit = switch (t.isEmpty() ? ' ' : t.charAt(t.length() - 1)) {
        case 'k' -> 1L << 10;
        case 'm' -> 1L << 20;
        case 'g' -> 1L << 30;
        default -> 1;
      };
      if (unit != 1) t = t.substring(0, t.length() - 1);
      try {
        long v = Math.multiplyExact(Long.parseLong(t), unit);
        return v < 0 ? -1 : v;
      } catch (NumberFormatException | ArithmeticException e) {
        return -1;
      }
    }

    /** {@code auto} (0) or a positive number of blocks. */
    private int kvBlocks() {
      if (text("kv-blocks").equalsIgnoreCase("auto")) return 0;
      long v;
      try {
        v = Long.parseLong(text("kv-blocks"));
      } catch (NumberFormatException e) {
        throw fail("kv-blocks", "must be auto or an integer in 1.." + Integer.MAX_VALUE);
      }
      if (v < 1 || v > Integer.MAX_VALUE) fail("kv-blocks", "must be auto or an integer in 1.." + Integer.MAX_VALUE);
      return (int) v;
    }

    /**
     * A fraction (written with a decimal point, so {@code 1} is never mistaken for one byte) or a size of at least
     * 1 MiB (anything smaller is a typo: no model's block table fits).
     */
    private KvCacheMemory kvCacheMemory() {
      String t = text("kv-cache-memory");
      String problem = "must be a fraction in (0,1] with a decimal point (e.g. 0.5, 1.0) or a size of at least 1m (k/m/g suffixes, e.g. 4g)";
      if (t.contains(".")) {
        if (!t.matches("[0-9]*\\.[0-9]+|[0-9]+\\.")) fail("kv-cache-memory", problem);
        double fraction = Double.parseDouble(t);
        if (!(fraction > 0 && fraction <= 1)) fail("kv-cache-memory", problem);
        return KvCacheMemory.ofFraction(fraction);
      }
      long v = bytes(t);
      if (v < (1L << 20)) fail("kv-cache-memory", problem);
      return KvCacheMemory.ofBytes(v);
    }

    private Duration duration(String name) {
      String t = text(name).toLowerCase(Locale.ROOT);
      long factorMillis = 1000;
      if (t.endsWith("ms")) {
        factorMillis = 1;
        t = t.substring(0, t.length() - 2);
      } else if (t.endsWith("s")) {
        t = t.substring(0, t.length() - 1);
      } else if (t.endsWith("m")) {
        factorMillis = 60_000;
        t = t.substring(0, t.length() - 1);
      }
      long millis;
      try {
        millis = Math.multiplyExact(Long.parseLong(t), factorMillis);
      } catch (NumberFormatException | ArithmeticException e) {
        throw fail(name, "must be a positive duration (e.g. 500ms, 30s, 2m; plain numbers are seconds)");
      }
      if (millis <= 0) fail(name, "must be a positive duration (e.g. 500ms, 30s, 2m; plain numbers are seconds)");
      return Duration.ofMillis(millis);
    }

    private double positiveDouble(String name) {
      double v;
      try {
        v = Double.parseDouble(text(name));
      } catch (NumberFormatException e) {
        throw fail(name, "must be a positive number");
      }
      if (!(v > 0) || Double.isInfinite(v)) fail(name, "must be a positive number");
      return v;
    }
  }
}
