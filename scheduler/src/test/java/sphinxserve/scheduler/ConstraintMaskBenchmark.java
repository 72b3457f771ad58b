package sphinxserve.scheduler;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.util.List;
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
import sphinxserve.api.TokenConstraint;
import sphinxserve.runtime.tokenizer.BundleTokenizers;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;
import sphinxserve.structured.CompiledGrammar;
import sphinxserve.structured.GrammarMatcher;
import sphinxserve.structured.Grammars;
import sphinxserve.structured.JsonSchemaGrammar;
import sphinxserve.structured.TokenVocabulary;

/**
 * What a constraint adds to sampling one row of the bench bundle's real 32k vocabulary, with the mask cached (the
 * steady state of a decode): {@code fillAllowed} alone (the cached mask copied out), {@code applyConstraint}
 * (fillAllowed and every denied logit set to -Infinity) and a whole greedy sample with the constraint, against
 * the same greedy sample without one. Positions in a JSON object of a 2-property schema: {@code structure} (after
 * {@code {}: a key or whitespace must come, few tokens allowed) and {@code string} (inside a string value: nearly
 * every token allowed).
 *
 * <p>Run: {@code bin/bench-sampler} runs SamplerBenchmark; this one with
 * {@code bin/bench-sampler 'ConstraintMaskBenchmark' -f 1 -wi 3 -i 5 -w 1 -r 1}. Results: docs/PERFORMANCE.md,
 * "Structured outputs".
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class ConstraintMaskBenchmark {

  /** The bench bundle's vocabulary size (its tokenizer is built with seed 1, as the bundle's). */
  static final int VOCAB_SIZE = 32_000;

  /** Where in the answer: {@code structure} or {@code string}. */
  @Param({"structure", "string"})
  public String position;

  private float[] logits;
  private float[] scratch;
  private long[] bits;
  private Sampler sampler;
  private TokenConstraint.Matcher matcher;
  private SamplingState constrained;
  private SamplingState free;

  /** Compiles the schema over the bench vocabulary and positions a matcher. */
  @Setup(Level.Trial)
  public void setUp() throws Exception {
    int eos = BundleTokenizers.DEFAULT_SPECIAL_TOKENS.indexOf("</s>");
    TokenVocabulary vocabulary;
    try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(BundleTokenizers.build(VOCAB_SIZE, BundleTokenizers.DEFAULT_SPECIAL_TOKENS, 1))) {
      vocabulary = TokenVocabulary.of(tokenizer, List.of(eos));
    }
    String schema = """
        {"type": "object", "properties": {"id": {"type": "integer"}, "title": {"type": "string", "minLength": 8, "maxLength": 200}},
         "required": ["id", "title"], "additionalProperties": false}""";
    CompiledGrammar grammar = Grammars.compile(JsonSchemaGrammar.grammar(new ObjectMapper().readTree(schema)), vocabulary);
    GrammarMatcher positioned = grammar.newMatcher();
    String prefix = position.equals("structure") ? "{" : "{\"id\": 7, \"title\": \"abc";
    if (!positioned.acceptBytes(prefix.getBytes(StandardCharsets.UTF_8))) throw new IllegalStateException("not a prefix: " + prefix);
    TokenConstraint at = positioned::copy;
    matcher = at.newMatcher();
    Random random = new Random(2024);
    logits = new float[VOCAB_SIZE];
    for (int i = 0; i < VOCAB_SIZE; i++) logits[i] = (float) random.nextGaussian() * 1.5f;
    scratch = new float[VOCAB_SIZE];
    bits = new long[(VOCAB_SIZE + 63) >>> 6];
    sampler = new Sampler(VOCAB_SIZE);
    SamplingParams greedy = SamplingParams.builder().temperature(0).maxTokens(1000).build();
    constrained = new SamplingState(greedy.toBuilder().constraint(at).build(), VOCAB_SIZE, eos, new int[0]);
    free = new SamplingState(greedy, VOCAB_SIZE, eos, new int[0]);
    matcher.fillAllowed(bits); // the mask is computed once here; every call below is a cache hit
  }

  /** The cached mask copied out. */
  @Benchmark
  public long[] fillAllowed() {
    matcher.fillAllowed(bits);
    return bits;
  }

  /** The row copied, then the mask applied: fillAllowed and -Infinity on every denied logit. */
  @Benchmark
  public float[] applyConstraint() {
    System.arraycopy(logits, 0, scratch, 0, VOCAB_SIZE);
    constrained.applyConstraint(scratch, bits);
    return scratch;
  }

  /** A whole greedy sample under the constraint (row copy included). */
  @Benchmark
  public int greedyConstrained() {
    System.arraycopy(logits, 0, scratch, 0, VOCAB_SIZE);
    return sampler.sample(scratch, constrained).tokenId();
  }

  /** The same greedy sample without a constraint. */
  @Benchmark
  public int greedyFree() {
    System.arraycopy(logits, 0, scratch, 0, VOCAB_SIZE);
    return sampler.sample(scratch, free).tokenId();
  }
}
