package sphinxserve.runtime.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.regex.Matcher;

/**
 * What the bundle builder's BPE learns from: the shipped English text ({@code corpus.txt}, about 50 KB of
 * captions, scene descriptions and SPHINX-style prompts and answers written for this project) plus a seeded
 * synthetic expansion of pseudo-words.
 */
final class TrainingCorpus {
  /*
   * Why the expansion: 50 KB of text holds only 740 distinct pre-tokenised pieces, which supply a small
   * fraction of the merges that the bench bundle's 32,000-token vocabulary needs (already the 2,000-token
   * "tiny" vocabulary reaches into the synthetic part). So the corpus is padded with
   * pseudo-words from a syllable grammar (onset + nucleus + coda, one to four syllables, mostly with a
   * leading space like a real word, sometimes capitalised), drawn with a SplittableRandom from the seed.
   * The r-th distinct pseudo-word (1-based) gets the Zipfian count max(1, ZIPF_TOP / r).
   *
   * Why real text still wins: every real occurrence is weighted by W = (synthetic mass × longest synthetic
   * piece) + 1. A pair's count from synthetic words is at most that product, and a pair inside a real piece
   * counts at least W, so every pair that occurs in the real text outranks every synthetic-only pair: all
   * real pieces become single tokens before the first purely synthetic merge. Merges learned from the
   * expansion are meaningless, and the bundle's text is not meaningful anyway (DESIGN.md, "Bundles").
   */

  /** Classpath resource of the shipped text. */
  static final String RESOURCE = "corpus.txt";

  /** Count of the most frequent pseudo-word; the r-th gets {@code ZIPF_TOP / r}. */
  static final long ZIPF_TOP = 1000;

  private static final String[] ONSETS = {
    "", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "cr", "dr", "fl", "gr", "pl", "pr", "st", "tr", "sh", "ch", "th", "sk", "sp", "qu", "y"
  };
  private static final String[] NUCLEI = {"a", "e", "i", "o", "u", "a", "e", "ai", "ea", "ee", "oo", "ou", "io", "y"};
  private static final String[] CODAS = {"", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "rt", "ng", "ck", "x", "ph"};

  private TrainingCorpus() {}

  /** The shipped text, comment lines (starting with {@code "# "}) removed. */
  static String shippedText() {
    try (InputStream in = TrainingCorpus.class.getResourceAsStream(RESOURCE)) {
      if (in == null) {
        throw new IllegalStateException("missing classpath resource " + RESOURCE + " next to " + TrainingCorpus.class.getName());
      }
      String text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      StringBuilder kept = new StringBuilder(text.length());
      for (String line : text.split("\n", -1)) {
        if (!line.startsWith("# ")) {
          kept.append(line).append('\n');
        }
      }
      return kept.toString();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Pre-tokenised pieces and their weighted counts: the shipped text plus {@code numPseudoWords} distinct
   * pseudo-words drawn from {@code seed}.
   */
  static Map<String, Long> pieceCounts(int numPseudoWords, long seed) {
    Map<String, Long> real = new HashMap<>();
    Matcher m = ByteLevel.SPLIT.matcher(shippedText());
    while (m.find()) {
      real.merge(m.group(), 1L, Long::sum);
    }
    Map<String, Long> counts = new HashMap<>();
    long syntheticMass = 0;
    int longest = 1;
    int rank = 1;
    for (String word : pseudoWords(numPseudoWords, seed)) {
      long count = Math.max(1, ZIPF_TOP / rank++);
      syntheticMass += count;
      longest = Math.max(longest, word.getBytes(StandardCharsets.UTF_8).length);
      counts.put(word, count);
    }
    long realWeight = syntheticMass * longest + 1;
    for (Map.Entry<String, Long> e : real.entrySet()) {
      counts.merge(e.getKey(), e.getValue() * realWeight, Long::sum);
    }
    return counts;
  }

  /** {@code n} distinct pseudo-words in the order drawn; the same seed gives the same words. */
  static LinkedHashSet<String> pseudoWords(int n, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    LinkedHashSet<String> words = new LinkedHashSet<>();
    StringBuilder sb = new StringBuilder();
    while (words.size() < n) {
      sb.setLength(0);
      int numSyllables = 1 + pick(random, 0.25, 0.40, 0.25);
      for (int i = 0; i < numSyllables; i++) {
        sb.append(ONSETS[random.nextInt(ONSETS.length)])
            .append(NUCLEI[random.nextInt(NUCLEI.length)])
            .append(CODAS[random.nextInt(CODAS.length)]);
      }
      if (random.nextInt(10) == 0) {
        sb.setCharAt(0, Character.toUpperCase(sb.charAt(0)));
      }
      if (random.nextInt(100) < 85) {
        sb.insert(0, ' ');
      }
      words.add(sb.toString());
    }
    return words;
  }

  /** Index of the first cumulative probability that a uniform draw falls under (the last index otherwise). */
  private static int pick(SplittableRandom random, double... probabilities) {
    double u = random.nextDouble();
    double sum = 0;
    for (int i = 0; i < probabilities.length; i++) {
      sum += probabilities[i];
      if (u < sum) {
        return i;
      }
    }
    return probabilities.length;
  }
}
