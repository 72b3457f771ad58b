package sphinxserve.structured;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import sphinxserve.runtime.tokenizer.BundleTokenizers;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

/**
 * The project's real 32k vocabulary: the bench bundle's byte-level BPE tokenizer (BundlePreset.BENCH, seed 1, as
 * bin/bench-engine builds it), loaded through the runtime's HfTextTokenizer, EOS {@code </s>}. Built once per JVM.
 */
final class RealVocabulary {
  /** Vocabulary size of the bench bundle. */
  static final int SIZE = 32_000;
  /** Seed the bench bundle is built with (NodeBenchmark, DecoderBenchmark). */
  static final long SEED = 1;

  private static TokenVocabulary vocabulary;
  private static HfTextTokenizer tokenizer;

  private RealVocabulary() {}

  static synchronized HfTextTokenizer tokenizer() {
    if (tokenizer == null) {
      try {
        tokenizer = HfTextTokenizer.fromJson(BundleTokenizers.build(SIZE, BundleTokenizers.DEFAULT_SPECIAL_TOKENS, SEED));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return tokenizer;
  }

  static synchronized TokenVocabulary get() {
    if (vocabulary == null) {
      HfTextTokenizer t = tokenizer();
      vocabulary = TokenVocabulary.of(t, List.of(t.specialTokenIds().get("</s>")));
    }
    return vocabulary;
  }
}
