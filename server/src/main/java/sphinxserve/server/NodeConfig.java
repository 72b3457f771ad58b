package sphinxserve.server;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import sphinxserve.server.image.ImageCacheConfig;
import sphinxserve.server.image.ImageLimits;

/**
 * The node's configuration, from command-line flags ({@code --name=value} or {@code --name value}) over
 * environment variables ({@code SPHINX_NAME}, dashes as underscores) over defaults. {@link #usage()} lists
 * every option.
 *
 * @param port TCP port to listen on; 0 picks a free one
 * @param bundle a bundle directory, or {@code embedded:<preset>} to build that preset (seed 1) into
 *     {@code bundleCache} on first use
 * @param bundleCache where embedded bundles are built
 * @param ortThreads ONNX Runtime intra-op threads; 0 = one per core
 * @param imageThreads threads that decode and preprocess images
 * @param imageCacheBytes most bytes of image embeddings cached
 * @param maxImageBytes most encoded bytes per image
 * @param maxImagePixels most declared pixels per image
 * @param maxImageSide most pixels on either side of an image
 * @param maxImageJobs most images in decode/encode at once; more get RESOURCE_EXHAUSTED
 * @param maxVisionBatch most images per vision-encoder call
 * @param maxMessageBytes most bytes of one inbound gRPC message
 * @param kvBlocks KV-cache blocks
 * @param kvBlockSize tokens per KV-cache block
 * @param maxWaitingRequests most requests queued in the scheduler
 * @param maxRunningRequests most requests decoding at once
 * @param drainSeconds how long shutdown waits for in-flight calls before cancelling them
 * @param maxConnectionAgeSeconds how long a client connection may live before the node asks the client to
 *     reconnect (GOAWAY; in-flight calls get {@code drainSeconds} to finish), so clients re-resolve DNS and
 *     spread over nodes added since; 0 = forever
 */
public record NodeConfig(
    int port,
    String bundle,
    Path bundleCache,
    int ortThreads,
    int imageThreads,
    long imageCacheBytes,
    int maxImageBytes,
    long maxImagePixels,
    int maxImageSide,
    int maxImageJobs,
    int maxVisionBatch,
    int maxMessageBytes,
    int kvBlocks,
    int kvBlockSize,
    int maxWaitingRequests,
    int maxRunningRequests,
    int drainSeconds,
    int maxConnectionAgeSeconds) {

  /** The prefix of {@link #bundle} values that name a preset built on first use. */
  public static final String EMBEDDED = "embedded:";

  /** Option names, defaults and help, in {@link #usage()} order. */
  private static final String[][] OPTIONS = {
      {"port", "50051", "TCP port; 0 picks a free one"},
      {"bundle", "embedded:tiny", "bundle directory, or embedded:<test|tiny|bench> (built into --bundle-cache on first use)"},
      {"bundle-cache", "~/.cache/sphinx-serve/bundles", "where embedded bundles are built"},
      {"ort-threads", "0", "ONNX Runtime intra-op threads; 0 = one per core"},
      {"image-threads", "2", "threads decoding and preprocessing images"},
      {"image-cache-bytes", "1g", "bytes of image embeddings kept (k/m/g suffixes)"},
      {"max-image-bytes", "10m", "most encoded bytes per image"},
      {"max-image-pixels", "36000000", "most pixels (width × height) per image, checked before decoding"},
      {"max-image-side", "16384", "most pixels on either side of an image"},
      {"max-image-jobs", "8", "most images decoding/encoding at once; more get RESOURCE_EXHAUSTED"},
      {"max-vision-batch", "8", "most images per vision-encoder call"},
      {"max-message-bytes", "16m", "most bytes of one inbound gRPC message"},
      {"kv-blocks", "1024", "KV-cache blocks"},
      {"kv-block-size", "16", "tokens per KV-cache block"},
      {"max-waiting-requests", "256", "most requests queued for the engine"},
      {"max-running-requests", "64", "most requests decoding at once"},
      {"drain-seconds", "30", "how long shutdown waits for in-flight calls"},
      {"max-connection-age-seconds", "0", "GOAWAY a client connection after this long so clients re-resolve DNS; 0 = never"},
  };

  /** The defaults. */
  public static NodeConfig defaults() {
    return parse(new String[0], Map.of());
  }

  /**
   * Flags in {@code args} over variables in {@code env} over defaults. Unknown flags, missing values and
   * malformed numbers throw {@link IllegalArgumentException} naming the option.
   */
  public static NodeConfig parse(String[] args, Map<String, String> env) {
    Map<String, String> values = new LinkedHashMap<>();
    for (String[] o : OPTIONS) {
      String fromEnv = env.get("SPHINX_" + o[0].toUpperCase(Locale.ROOT).replace('-', '_'));
      values.put(o[0], fromEnv != null ? fromEnv : o[1]);
    }
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (!arg.startsWith("--")) throw new IllegalArgumentException("unexpected argument '" + arg + "'\n" + usage());
      String name = arg.substring(2);
      String value;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.substring(eq + 1);
        name = name.substring(0, eq);
      } else if (i + 1 < args.length) {
        value = args[++i];
      } else {
        throw new IllegalArgumentException("--" + name + ": missing value");
      }
      if (!values.containsKey(name)) throw new IllegalArgumentException("unknown option --" + name + "\n" + usage());
      values.put(name, value);
    }
    String cache = values.get("bundle-cache");
    if (cache.startsWith("~/")) cache = System.getProperty("user.home") + cache.substring(1);
    return new NodeConfig(
        intIn(values, "port", 0, 65535),
        values.get("bundle"),
        Path.of(cache),
        intIn(values, "ort-threads", 0, 1024),
        intIn(values, "image-threads", 1, 1024),
        bytes(values, "image-cache-bytes", 0, Long.MAX_VALUE),
        (int) bytes(values, "max-image-bytes", 1, Integer.MAX_VALUE),
        bytes(values, "max-image-pixels", 1, Long.MAX_VALUE),
        intIn(values, "max-image-side", 1, Integer.MAX_VALUE),
        intIn(values, "max-image-jobs", 1, 1 << 16),
        intIn(values, "max-vision-batch", 1, 1024),
        (int) bytes(values, "max-message-bytes", 1024, Integer.MAX_VALUE),
        intIn(values, "kv-blocks", 1, Integer.MAX_VALUE),
        intIn(values, "kv-block-size", 1, 4096),
        intIn(values, "max-waiting-requests", 1, Integer.MAX_VALUE),
        intIn(values, "max-running-requests", 1, Integer.MAX_VALUE),
        intIn(values, "drain-seconds", 0, 3600),
        intIn(values, "max-connection-age-seconds", 0, Integer.MAX_VALUE));
  }

  /** One line per option: name, default, what it does. */
  public static String usage() {
    StringBuilder sb = new StringBuilder("options (flag, or environment variable SPHINX_<NAME>):\n");
    for (String[] o : OPTIONS) sb.append(String.format("  --%-26s %-16s %s%n", o[0], o[1], o[2]));
    return sb.toString();
  }

  /** The image pipeline's part of this configuration. */
  public ImageCacheConfig imageCacheConfig() {
    return new ImageCacheConfig(imageCacheBytes, new ImageLimits(maxImageBytes, maxImagePixels, maxImageSide),
        imageThreads, maxImageJobs, maxVisionBatch);
  }

  private static int intIn(Map<String, String> values, String name, int min, int max) {
    return (int) bytesIn(name, values.get(name), min, max, false);
  }

  private static long bytes(Map<String, String> values, String name, long min, long max) {
    return bytesIn(name, values.get(name), min, max, true);
  }

  private static long bytesIn(String name, String text, long min, long max, boolean suffixes) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    long unit = 1;
    if (suffixes && !t.isEmpty()) {
      switch (t.charAt(t.length() - 1)) {
        case 'k' -> unit = 1L << 10;
        case 'm' -> unit = 1L << 20;
        case 'g' -> unit = 1L << 30;
        default -> {}
      }
      if (unit != 1) t = t.substring(0, t.length() - 1);
    }
    long v;
    try {
      v = Math.multiplyExact(Long.parseLong(t), unit);
    } catch (NumberFormatException | ArithmeticException e) {
      throw new IllegalArgumentException("--" + name + ": '" + text + "' is not " + (suffixes ? "a size (e.g. 512m)" : "an integer"));
    }
    if (v < min || v > max) throw new IllegalArgumentException("--" + name + ": " + text + " is outside " + min + ".." + max);
    return v;
  }
}
