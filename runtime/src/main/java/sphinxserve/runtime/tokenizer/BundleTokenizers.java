package sphinxserve.runtime.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The bundle builder's tokenizer: trains a byte-level BPE of an exact vocabulary size on the shipped text
 * (plus a seeded synthetic expansion) and returns its Hugging Face {@code tokenizer.json}. Deterministic: the
 * same arguments give byte-identical output.
 *
 * <p>Special token {@code specialTokens.get(i)} gets id {@code i}; BPE tokens follow. Special tokens are
 * never produced by {@link HfTextTokenizer#encode} from text: a prompt's BOS and image placeholders are
 * inserted by id.
 */
public final class BundleTokenizers {
  /*
   * vocabSize = k special tokens + 256 byte tokens + merged tokens, so training runs until the BPE holds
   * vocabSize - k tokens. The synthetic expansion gets 2 pseudo-words per requested token, which leaves
   * plenty of merges (a pseudo-word needs at least one merge of its own to become one token); should a
   * combination still run short, the expansion doubles and training reruns.
   *
   * Timings on the 2-core build machine (JDK 25, warm JVM; BundleTokenizersTest prints them): 512 tokens
   * 5-15 ms, 2,000 tokens 12-60 ms, 32,000 tokens 0.7-2.1 s (training 31,739 merges: 0.4-1.3 s; the spread
   * is other builds sharing the cores).
   * The bench tokenizer.json is about 1.3 MB.
   */

  /** Special tokens of the project's bundles, in id order: unknown, BOS, EOS, padding, image placeholder. */
  public static final List<String> DEFAULT_SPECIAL_TOKENS = List.of("<unk>", "<s>", "</s>", "<pad>", "<image>");

  /** Pseudo-words added per requested vocabulary entry. */
  static final int PSEUDO_WORDS_PER_TOKEN = 2;

  /** Trainings tried, the synthetic expansion doubling each time, before giving up. */
  static final int MAX_ATTEMPTS = 4;

  private BundleTokenizers() {}

  /**
   * A {@code tokenizer.json} with exactly {@code vocabSize} tokens, {@code specialTokens} as ids
   * {@code 0..k-1}.
   *
   * @param vocabSize total vocabulary, special tokens included; at least {@code k + 256}
   * @param specialTokens distinct, non-empty special token strings, e.g. {@link #DEFAULT_SPECIAL_TOKENS}
   * @param seed drives the synthetic part of the training corpus
   * @throws IllegalArgumentException when {@code vocabSize} cannot hold the specials and the 256 byte tokens
   */
  public static String build(int vocabSize, List<String> specialTokens, long seed) {
    int numBpeTokens = vocabSize - specialTokens.size();
    if (numBpeTokens < ByteLevel.NUM_BYTES) {
      throw new IllegalArgumentException("vocabSize " + vocabSize + " cannot hold " + specialTokens.size()
          + " special tokens and the 256 byte tokens (needs at least " + (specialTokens.size() + ByteLevel.NUM_BYTES) + ")");
    }
    int numPseudoWords = PSEUDO_WORDS_PER_TOKEN * vocabSize;
    for (int attempt = 1; ; attempt++) {
      try {
        BpeModel model = BpeTrainer.train(TrainingCorpus.pieceCounts(numPseudoWords, seed), numBpeTokens);
        return TokenizerJsonWriter.write(model, specialTokens);
      } catch (BpeTrainer.CorpusTooSmallException e) {
        if (attempt == MAX_ATTEMPTS) {
          throw e;
        }
        numPseudoWords *= 2;
      }
    }
  }

  /** {@link #build} as UTF-8 bytes, ready to be written to a bundle's {@code tokenizer.json}. */
  public static byte[] buildBytes(int vocabSize, List<String> specialTokens, long seed) {
    return build(vocabSize, specialTokens, seed).getBytes(StandardCharsets.UTF_8);
  }
}
