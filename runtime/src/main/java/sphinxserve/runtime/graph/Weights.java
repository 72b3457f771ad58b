package sphinxserve.runtime.graph;

import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * Named float32 tensors, generated deterministically: each tensor draws from its own generator seeded by
 * (seed, name), so adding a tensor never changes another one's values and the same seed always yields the
 * same bytes.
 */
public final class Weights {

  private final long seed;
  private final Map<String, float[]> tensors = new LinkedHashMap<>();
  /** Tensors read only when asked for, and not kept: a checkpoint's weights, loaded one at a time. */
  private final Map<String, Supplier<float[]>> lazy = new LinkedHashMap<>();
  /** Names {@link #get} was asked for: what the graphs built from these weights use. */
  private final Set<String> used = new LinkedHashSet<>();

  public Weights(long seed) {
    this.seed = seed;
  }

  /** Normal(0, std) values. */
  public float[] normal(String name, int count, double std) {
    SplittableRandom random = generator(name);
    float[] values = new float[count];
    for (int i = 0; i < count; i++) values[i] = (float) (random.nextGaussian() * std);
    return put(name, values);
  }

  /** A weight matrix {@code [in, out]} with the 1/√in scale that keeps activations O(1). */
  public float[] matrix(String name, int in, int out) {
    return normal(name, in * out, 1.0 / Math.sqrt(in));
  }

  /** Constant values (norm scales start at 1, biases at 0). */
  public float[] constant(String name, int count, float value) {
    float[] values = new float[count];
    java.util.Arrays.fill(values, value);
    return put(name, values);
  }

  /** Norm gains near 1, perturbed so that a wrong gain would show in tests. */
  public float[] gain(String name, int count) {
    SplittableRandom random = generator(name);
    float[] values = new float[count];
    for (int i = 0; i < count; i++) values[i] = (float) (1.0 + 0.1 * random.nextGaussian());
    return put(name, values);
  }

  public float[] get(String name) {
    float[] values = tensors.get(name);
    if (values == null && lazy.containsKey(name)) values = lazy.get(name).get();
    if (values == null) throw new IllegalArgumentException("no weight named " + name);
    used.add(name);
    return values;
  }

  /** The names of every tensor held or loadable. */
  public Set<String> names() {
    Set<String> all = new LinkedHashSet<>(tensors.keySet());
    all.addAll(lazy.keySet());
    return Collections.unmodifiableSet(all);
  }

  /**
   * Registers a tensor that {@code loader} produces each time it is asked for and that is not kept, so a graph
   * built from a large checkpoint holds one tensor at a time.
   */
  public void putLazy(String name, Supplier<float[]> loader) {
    lazy.put(name, loader);
  }

  /** The names {@link #get} returned so far. */
  public Set<String> used() {
    return Collections.unmodifiableSet(used);
  }

  /** Stores a tensor (e.g. trained weights); replaces any previous one of that name. */
  public float[] put(String name, float[] values) {
    tensors.put(name, values);
    return values;
  }

  private SplittableRandom generator(String name) {
    long h = seed * 0x9E3779B97F4A7C15L;
    for (byte b : name.getBytes(StandardCharsets.UTF_8)) h = (h ^ b) * 0x100000001B3L;
    return new SplittableRandom(h);
  }
}
