package sphinxserve.server.auth;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The tenants a node lets in, read from the {@code --tenants} file: names, hashed API keys, allowed methods and
 * limits.
 *
 * <p>The file is Java {@code .properties} with {@code <tenant>.<attribute>} names:
 * <pre>
 *   acme.key-sha256        = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08[, another]
 *   acme.methods           = Generate, PutImage, GetModelInfo     # or * (the default)
 *   acme.requests-per-second = 20        # 0 or absent: no limit (all limits)
 *   acme.tokens-per-second = 2000
 *   acme.max-streams       = 8
 *   acme.max-tokens        = 512
 *   acme.max-image-bytes   = 2m
 * </pre>
 * Keys are stored only as the SHA-256 of the bearer token (lower-case hex: {@code printf %s KEY | sha256sum}); a
 * leaked file does not leak a usable key. A presented key is hashed and looked up by that hash, so the lookup
 * reveals nothing a timing attacker could steer towards a stored key. A tenant without keys can still be let in
 * by a JWT naming it. Every problem fails at start with the file and the property named.
 */
public final class Tenants {

  /** Tenant names: short, safe in logs and metric labels. */
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_-]{1,64}");

  /** A SHA-256 as lower-case hex. */
  private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");

  /** The attributes a tenant may set. */
  private static final List<String> ATTRIBUTES = List.of("key-sha256", "methods", "requests-per-second",
      "tokens-per-second", "max-streams", "max-tokens", "max-image-bytes");

  /** The methods of {@code sphinx.v1.Sphinx} a tenant can be allowed. */
  static final Set<String> METHODS = Set.of("Generate", "PutImage", "GetModelInfo");

  private final Map<String, Tenant> byName;
  private final Map<String, Tenant> byKeyHash;

  private Tenants(Map<String, Tenant> byName, Map<String, Tenant> byKeyHash) {
    this.byName = Map.copyOf(byName);
    this.byKeyHash = Map.copyOf(byKeyHash);
  }

  /** Reads {@code file}; a bad line throws {@link IllegalArgumentException} naming {@code tenants}, the file and the property. */
  public static Tenants load(Path file) {
    Properties p = new Properties();
    try (Reader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      p.load(reader);
    } catch (IOException | IllegalArgumentException e) {
      throw new IllegalArgumentException("tenants: cannot read " + file + ": " + e.getMessage(), e);
    }
    Map<String, Map<String, String>> raw = new TreeMap<>();
    for (String property : p.stringPropertyNames()) {
      int dot = property.lastIndexOf('.');
      String name = dot < 0 ? "" : property.substring(0, dot);
      String attribute = dot < 0 ? property : property.substring(dot + 1);
      if (!NAME.matcher(name).matches()) {
        throw bad(file, property, "expected <tenant>.<attribute> with a tenant name of letters, digits, - and _ (at most 64)");
      }
      if (!ATTRIBUTES.contains(attribute)) throw bad(file, property, "unknown attribute '" + attribute + "'; known: " + ATTRIBUTES);
      raw.computeIfAbsent(name, n -> new LinkedHashMap<>()).put(attribute, p.getProperty(property).trim());
    }
    Map<String, Tenant> byName = new LinkedHashMap<>();
    Map<String, Tenant> byKeyHash = new HashMap<>();
    raw.forEach((name, attributes) -> {
      Set<String> methods = new LinkedHashSet<>();
      for (String m : attributes.getOrDefault("methods", Tenant.ALL_METHODS).split(",")) {
        String method = m.trim();
        if (method.isEmpty()) continue;
        if (!method.equals(Tenant.ALL_METHODS) && !METHODS.contains(method)) {
          throw bad(file, name + ".methods", "unknown method '" + method + "'; known: " + METHODS + " or *");
        }
        methods.add(method);
      }
      TenantLimits limits = new TenantLimits(
          number(file, name, attributes, "requests-per-second"),
          number(file, name, attributes, "tokens-per-second"),
          (int) Math.min(Integer.MAX_VALUE, (long) number(file, name, attributes, "max-streams")),
          (int) Math.min(Integer.MAX_VALUE, (long) number(file, name, attributes, "max-tokens")),
          bytes(file, name, attributes, "max-image-bytes"));
      Tenant tenant = new Tenant(name, Set.copyOf(methods), limits);
      byName.put(name, tenant);
      String keys = attributes.getOrDefault("key-sha256", "");
      for (String k : keys.split(",")) {
        String hash = k.trim();
        if (hash.isEmpty()) continue;
        if (!SHA256.matcher(hash).matches()) {
          throw bad(file, name + ".key-sha256", "must be SHA-256 hashes as 64 lower-case hex characters (printf %s KEY | sha256sum)");
        }
        Tenant other = byKeyHash.put(hash, tenant);
        if (other != null) throw bad(file, name + ".key-sha256", "the same key is also " + other.name() + "'s");
      }
    });
    if (byName.isEmpty()) throw new IllegalArgumentException("tenants: " + file + " defines no tenant");
    return new Tenants(byName, byKeyHash);
  }

  /** The tenant whose API key is {@code key}, or null. */
  Tenant byKey(String key) {
    return byKeyHash.get(sha256(key));
  }

  /** The tenant named {@code name}, or null. */
  Tenant byName(String name) {
    return byName.get(name);
  }

  /** Every tenant. */
  public java.util.Collection<Tenant> all() {
    return byName.values();
  }

  /** SHA-256 of {@code key}'s UTF-8 bytes, lower-case hex: how the file stores keys. */
  public static String sha256(String key) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static double number(Path file, String name, Map<String, String> attributes, String attribute) {
    String text = attributes.get(attribute);
    if (text == null || text.isEmpty()) return 0;
    double v;
    try {
      v = Double.parseDouble(text);
    } catch (NumberFormatException e) {
      throw bad(file, name + "." + attribute, "must be a number >= 0 (0 = no limit), got '" + text + "'");
    }
    if (!(v >= 0) || Double.isInfinite(v)) throw bad(file, name + "." + attribute, "must be a number >= 0 (0 = no limit), got '" + text + "'");
    return v;
  }

  private static long bytes(Path file, String name, Map<String, String> attributes, String attribute) {
    String text = attributes.getOrDefault(attribute, "").toLowerCase(Locale.ROOT);
    if (text.isEmpty()) return 0;
    long unit = switch (text.charAt(text.length() - 1)) {
      case 'k' -> 1L << 10;
      case 'm' -> 1L << 20;
      case 'g' -> 1L << 30;
      default -> 1;
    };
    try {
      long v = Math.multiplyExact(Long.parseLong(unit == 1 ? text : text.substring(0, text.length() - 1)), unit);
      if (v < 0) throw new NumberFormatException();
      return v;
    } catch (NumberFormatException | ArithmeticException e) {
      throw bad(file, name + "." + attribute, "must be a size in bytes (k/m/g suffixes), got '" + text + "'");
    }
  }

  private static IllegalArgumentException bad(Path file, String property, String problem) {
    return new IllegalArgumentException("tenants: " + file + ": " + property + ": " + problem);
  }
}
