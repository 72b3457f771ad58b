package sphinxserve.scheduler;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import sphinxserve.api.SamplingParams;

/**
 * Cost of sampling one row of V = 32,000 logits per mode, with the scalar and the Vector API row kernels.
 * Each call copies the row into the sampler's scratch first (as the engine does with
 * {@code StepOutput.copyRow}), so the copy is included. Rows: {@code peaked} is N(0, 1.5²) noise with 100
 * tokens lifted to 10 … 0.1 above it (an LLM-like head); {@code flat} is N(0, 1) noise only, the worst case
 * for top-p without top-k (its 0.9 nucleus holds most of the vocabulary).
 *
 * <p>Run: {@code bin/bench-sampler} (short settings), or with JMH options, e.g.
 * {@code bin/bench-sampler -p kernels=vector -f 1 -wi 5 -i 10}. Results: docs/PERFORMANCE.md.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class SamplerBenchmark {

  /** Vocabulary size of LLaMA-2, SPHINX's decoder. */
  static final int VOCAB_SIZE = 32_000;

  /** Generated tokens behind the penalties benchmark. */
  static final int NUM_GENERATED = 500;

  /** Row kernels: {@code vector} (VectorRowMath) or {@code scalar} (ScalarRowMath). */
  @Param({"vector", "scalar"})
  public String kernels;

  /** Row shape: {@code peaked} or {@code flat}. */
  @Param({"peaked", "flat"})
  public String row;

  private float[] logits;
  private float[] scratch;
  private Sampler sampler;
  private SamplingState greedy;
  private SamplingState topK50;
  private SamplingState topK50TopP09;
  private SamplingState topP09;
  private SamplingState temperature;
  private SamplingState penalties;
  private SamplingState logprobs;

  /** Builds the row, the sampler and one state per mode. */
  @Setup(Level.Trial)
  public void setUp() {
    Random random = new Random(2024);
    logits = new float[VOCAB_SIZE];
    boolean peaked = row.equals("peaked");
    for (int i = 0; i < VOCAB_SIZE; i++) logits[i] = (float) random.nextGaussian() * (peaked ? 1.5f : 1f);
    if (peaked) {
      for (int k = 0; k < 100; k++) logits[random.nextInt(VOCAB_SIZE)] += 10f - 0.1f * k;
    }
    scratch = new float[VOCAB_SIZE];
    sampler = new Sampler(VOCAB_SIZE, kernels.equals("vector") ? VectorRowMath.INSTANCE : ScalarRowMath.INSTANCE);
    SamplingParams base = SamplingParams.builder().temperature(0.8f).seed(1).maxTokens(1000).build();
    greedy = state(base.toBuilder().temperature(0).build());
    topK50 = state(base.toBuilder().topK(50).build());
    topK50TopP09 = state(base.toBuilder().topK(50).topP(0.9f).build());
    topP09 = state(base.toBuilder().topP(0.9f).build());
    temperature = state(base);
    logprobs = state(base.toBuilder().topK(50).topP(0.9f).logprobs(5).build());
    penalties = state(base.toBuilder().topK(50).topP(0.9f).repetitionPenalty(1.1f).presencePenalty(0.5f)
        .frequencyPenalty(0.5f).build(), random);
  }

  private static SamplingState state(SamplingParams params) {
    return new SamplingState(params, VOCAB_SIZE, 2, new int[0]);
  }

  /** A state with a 600-token prompt and {@link #NUM_GENERATED} generated tokens behind it. */
  private static SamplingState state(SamplingParams params, Random random) {
    int[] prompt = random.ints(600, 0, VOCAB_SIZE).toArray();
    SamplingState s = new SamplingState(params, VOCAB_SIZE, 2, prompt);
    for (int i = 0; i < NUM_GENERATED; i++) s.append(random.nextInt(VOCAB_SIZE));
    return s;
  }

  private int sample(SamplingState state) {
    System.arraycopy(logits, 0, scratch, 0, VOCAB_SIZE);
    return sampler.sample(scratch, state).tokenId();
  }

  /** Greedy argmax. */
  @Benchmark
  public int greedy() {
    return sample(greedy);
  }

  /** Temperature 0.8, top-k 50. */
  @Benchmark
  public int topK50() {
    return sample(topK50);
  }

  /** Temperature 0.8, top-k 50, top-p 0.9. */
  @Benchmark
  public int topK50TopP09() {
    return sample(topK50TopP09);
  }

  /** Temperature 0.8, top-p 0.9, top-k off (candidate-set growth). */
  @Benchmark
  public int topP09NoTopK() {
    return sample(topP09);
  }

  /** Temperature 0.8 over the full distribution. */
  @Benchmark
  public int temperatureOnly() {
    return sample(temperature);
  }

  /** Temperature 0.8, top-k 50, top-p 0.9, all three penalties over 600 prompt and 500 generated tokens. */
  @Benchmark
  public int penalties500() {
    return sample(penalties);
  }

  /** Temperature 0.8, top-k 50, top-p 0.9, top-5 logprobs. */
  @Benchmark
  public SampledToken topK50TopP09Logprobs5() {
    System.arraycopy(logits, 0, scratch, 0, VOCAB_SIZE);
    return sampler.sample(scratch, logprobs);
  }
}
