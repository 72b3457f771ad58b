package sphinxserve.structured;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import sphinxserve.runtime.tokenizer.BundleTokenizers;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

/**
 * The project's real 32k vocabulary: the byte-level BPE tokenizer of the {@code bench} bundle
 * ({@code BundleBuilder.build(BundlePreset.BENCH, 1, dir)}, as NodeBenchmark and Soak build it), loaded through
 * the runtime's {@link HfTextTokenizer}. Built once per test JVM (about a second).
 */
final class BenchVocabulary {
  /** Seed the bench bundle is built with. */
  static final long BENCH_SEED = 1;

  /** Vocabulary size of the bench preset. */
  static final int VOCAB_SIZE = 32_000;

  /** EOS id: {@code </s>}, the third default special token. */
  static final int EOS = BundleTokenizers.DEFAULT_SPECIAL_TOKENS.indexOf("</s>");

  private static volatile TokenVocabulary vocabulary;

  private BenchVocabulary() {}

  /** The vocabulary, with {@link #EOS} as its end-of-output id. */
  static TokenVocabulary get() {
    TokenVocabulary v = vocabulary;
    if (v == null) {
      synchronized (BenchVocabulary.class) {
        v = vocabulary;
        if (v == null) {
          String json = BundleTokenizers.build(VOCAB_SIZE, BundleTokenizers.DEFAULT_SPECIAL_TOKENS, BENCH_SEED);
          try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(json)) {
            v = TokenVocabulary.of(tokenizer, List.of(EOS));
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
          vocabulary = v;
        }
      }
    }
    return v;
  }
}
