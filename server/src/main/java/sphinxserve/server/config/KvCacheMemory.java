package sphinxserve.server.config;

/**
 * {@code --kv-cache-memory}: the KV pool's memory budget, either a number of bytes or a fraction of the memory
 * left after the JVM heap and the model's weights ({@link KvPoolSizing} turns it into blocks). Exactly one of
 * the two is set.
 *
 * @param bytes the budget in bytes; 0 when {@code fraction} is set
 * @param fraction the share, in (0, 1], of the memory left; 0 when {@code bytes} is set
 */
public record KvCacheMemory(long bytes, double fraction) {

  public KvCacheMemory {
    boolean isBytes = bytes > 0 && fraction == 0;
    boolean isFraction = bytes == 0 && fraction > 0 && fraction <= 1;
    if (!isBytes && !isFraction) {
      throw new IllegalArgumentException("kv-cache-memory: bytes > 0 or a fraction in (0,1], got bytes " + bytes + ", fraction " + fraction);
    }
  }

  /** A budget of {@code bytes}. */
  public static KvCacheMemory ofBytes(long bytes) {
    return new KvCacheMemory(bytes, 0);
  }

  /** A budget of {@code fraction} of the memory left after the heap and the weights. */
  public static KvCacheMemory ofFraction(double fraction) {
    return new KvCacheMemory(0, fraction);
  }

  /** Whether the budget is a fraction (else bytes). */
  public boolean isFraction() {
    return fraction > 0;
  }
}
