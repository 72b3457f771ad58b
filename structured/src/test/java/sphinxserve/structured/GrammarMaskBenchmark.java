package sphinxserve.structured;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
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

/**
 * Cost of one decoding step's token mask, and of compiling, for a JSON object grammar with 20 properties (the
 * shape of a JSON-Schema grammar: {@link TestGrammars#objectWithProperties}).
 * <ul>
 *   <li>{@code vocab=32k}: the bench bundle's real byte-level BPE tokenizer (32,000 ids); {@code vocab=128k}: a
 *       synthetic byte-level vocabulary of 128,000 ids (256 single bytes, then text-like byte strings of 2–12
 *       bytes with some multi-byte UTF-8), the size of LLaMA-3's.
 *   <li>{@code state=inString}: inside a string value ({@code {"property_0": "ab}), where almost every token is
 *       allowed: the longest trie walk; {@code state=afterComma}: before the next key, where few are.
 *   <li>{@code maskHit}: the configuration's mask is cached (a loop such as a string's characters): one copy.
 *       {@code maskMiss}: the mask recomputed by a trie walk over memoised transitions (a configuration not
 *       seen before in a grammar already in use). {@code maskMissCold}: a freshly compiled grammar, so every
 *       transition on the walk is computed too (the first request with a new schema).
 *   <li>{@code compile}: {@code Grammar.gbnf} plus {@code Grammars.compile} of the 20-property grammar.
 * </ul>
 *
 * <p>Run: {@code bin/bench-grammar} (short settings), or with JMH options, e.g.
 * {@code bin/bench-grammar -p vocab=32k -f 1 -wi 3 -i 5}. Results: docs/PERFORMANCE.md.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
public class GrammarMaskBenchmark {

  /** Properties of the benchmark object. */
  static final int NUM_PROPERTIES = 20;

  /** {@code 32k} (real) or {@code 128k} (synthetic). */
  @Param({"32k", "128k"})
  public String vocab;

  /** {@code inString} or {@code afterComma}. */
  @Param({"inString", "afterComma"})
  public String state;

  private String gbnf;
  private Grammar grammar;
  private TokenVocabulary vocabulary;
  private CompiledGrammar warm;
  private MatchState warmState;
  private GrammarMatcher warmMatcher;
  private CompiledGrammar cold;
  private MatchState coldState;
  private long[] allowed;

  @Setup(Level.Trial)
  public void setUp() {
    vocabulary = vocab.equals("32k") ? RealVocabulary.get() : synthetic(128_000, 42);
    gbnf = TestGrammars.objectWithProperties(NUM_PROPERTIES);
    grammar = Grammar.gbnf(gbnf);
    warm = Grammars.compile(grammar, vocabulary);
    warmMatcher = at(warm);
    warmState = warmMatcher.current();
    allowed = new long[vocabulary.numWords()];
    warmMatcher.fillAllowed(allowed); // cached from here on
  }

  /** A fresh grammar for every cold call. */
  @Setup(Level.Invocation)
  public void freshGrammar() {
    cold = Grammars.compile(grammar, vocabulary);
    coldState = at(cold).current();
  }

  private GrammarMatcher at(CompiledGrammar g) {
    GrammarMatcher m = g.newMatcher();
    String prefix = state.equals("inString") ? "{\"property_0\": \"ab" : "{\"property_0\": \"x\", ";
    if (!m.acceptBytes(prefix.getBytes(StandardCharsets.UTF_8))) throw new IllegalStateException("prefix rejected");
    return m;
  }

  @Benchmark
  public long[] maskHit() {
    warmMatcher.fillAllowed(allowed);
    return allowed;
  }

  @Benchmark
  public long[] maskMiss() {
    return warm.computeMask(warmState);
  }

  @Benchmark
  public long[] maskMissCold() {
    cold.fillMask(coldState, allowed);
    return allowed;
  }

  @Benchmark
  public CompiledGrammar compile() {
    return Grammars.compile(Grammar.gbnf(gbnf), vocabulary);
  }

  /**
   * A byte-level vocabulary of {@code size} distinct ids: the 256 bytes, then byte strings of 2–12 bytes drawn
   * from text-like material (letters with a leading space half the time, digits, punctuation, JSON-ish pieces,
   * some Latin-1 and CJK characters); EOS is id {@code size - 1} (no bytes).
   */
  static TokenVocabulary synthetic(int size, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    List<byte[]> tokens = new ArrayList<>(size);
    Set<String> seen = new HashSet<>();
    for (int b = 0; b < 256; b++) tokens.add(new byte[] {(byte) b});
    String[] pieces = {"\"", "\":", "\": \"", "\", \"", "{", "}", "[", "]", ",", ", ", "\n", "  ", "\\n", "\\\""};
    String letters = "etaoinshrdlcumwfgypbvkjxqz";
    while (tokens.size() < size - 1) {
      StringBuilder sb = new StringBuilder();
      int kind = random.nextInt(10);
      if (kind < 6) {
        if (random.nextBoolean()) sb.append(' ');
        int n = 1 + random.nextInt(9);
        for (int i = 0; i < n; i++) sb.append(letters.charAt(Math.min(letters.length() - 1, (int) Math.abs(random.nextGaussian() * 8))));
        if (random.nextInt(4) == 0) sb.setCharAt(sb.length() - 1, Character.toUpperCase(sb.charAt(sb.length() - 1)));
      } else if (kind == 6) {
        int n = 1 + random.nextInt(4);
        for (int i = 0; i < n; i++) sb.append((char) ('0' + random.nextInt(10)));
      } else if (kind == 7) {
        sb.append(pieces[random.nextInt(pieces.length)]).append(pieces[random.nextInt(pieces.length)]);
      } else if (kind == 8) {
        int n = 1 + random.nextInt(3);
        for (int i = 0; i < n; i++) sb.append((char) (0xE0 + random.nextInt(0x20)));
      } else {
        int n = 1 + random.nextInt(3);
        for (int i = 0; i < n; i++) sb.append((char) (0x4E00 + random.nextInt(0x5000)));
      }
      byte[] bytes = sb.toString().getBytes(StandardCharsets.UTF_8);
      if (bytes.length >= 2 && bytes.length <= 12 && seen.add(sb.toString())) tokens.add(bytes);
    }
    tokens.add(new byte[0]);
    return TokenVocabulary.of(tokens, List.of(size - 1));
  }
}
