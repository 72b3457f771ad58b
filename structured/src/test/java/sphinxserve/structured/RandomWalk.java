package sphinxserve.structured;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import sphinxserve.api.TokenConstraint;

/**
 * A model whose output is noise, held to a constraint: at each step it picks uniformly among the tokens the
 * matcher allows (EOS included when allowed), until it picks EOS. With probability {@code closeBias} a step picks
 * instead among the allowed tokens that start with a closing byte ({@code " ] }}) or are EOS, when there are any:
 * still only allowed tokens, but unbounded strings and arrays then end in reasonable time.
 */
final class RandomWalk {
  private static final String CLOSERS = "\"]}";

  private RandomWalk() {}

  /** The output of one walk. */
  record Result(String text, int numBytes, int numTokens, boolean ended) {}

  /**
   * Walks until EOS or {@code maxTokens}.
   *
   * @throws AssertionError when the matcher offers no token at all (a dead end) or refuses one it offered
   */
  static Result run(TokenConstraint constraint, TokenVocabulary vocabulary, Random random, int maxTokens, double closeBias) {
    return run(constraint, vocabulary, random, maxTokens, closeBias, id -> {
      byte[] b = vocabulary.tokenBytes(id);
      return vocabulary.isEos(id) || (b.length > 0 && CLOSERS.indexOf(b[0]) >= 0);
    });
  }

  /**
   * Walks until EOS or {@code maxTokens}; with probability {@code bias} a step picks among the allowed tokens
   * {@code preferred} holds (when there are any) instead of among all allowed ones.
   */
  static Result run(TokenConstraint constraint, TokenVocabulary vocabulary, Random random, int maxTokens, double bias,
      java.util.function.IntPredicate preferred) {
    return run(constraint.newMatcher(), "", vocabulary, random, maxTokens, bias, preferred);
  }

  /** As above, from {@code matcher} after it was already fed {@code prefix} (which the result's text starts with). */
  static Result run(TokenConstraint.Matcher matcher, String prefix, TokenVocabulary vocabulary, Random random,
      int maxTokens, double bias, java.util.function.IntPredicate preferred) {
    double closeBias = bias;
    long[] bits = new long[vocabulary.numWords()];
    int[] allowed = new int[vocabulary.size()];
    int[] closing = new int[vocabulary.size()];
    boolean[] closer = new boolean[vocabulary.size()];
    for (int id = 0; id < closer.length; id++) {
      closer[id] = preferred.test(id);
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(prefix.getBytes(StandardCharsets.UTF_8));
    for (int step = 0; step < maxTokens; step++) {
      matcher.fillAllowed(bits);
      int numAllowed = 0;
      int numClosing = 0;
      for (int w = 0; w < bits.length; w++) {
        long word = bits[w];
        while (word != 0) {
          int id = w * 64 + Long.numberOfTrailingZeros(word);
          word &= word - 1;
          allowed[numAllowed++] = id;
          if (closer[id]) {
            closing[numClosing++] = id;
          }
        }
      }
      if (numAllowed == 0) {
        throw new AssertionError("dead end after " + out.size() + " bytes: " + out.toString(StandardCharsets.UTF_8));
      }
      int pick = numClosing > 0 && random.nextDouble() < closeBias
          ? closing[random.nextInt(numClosing)] : allowed[random.nextInt(numAllowed)];
      if (!matcher.accept(pick)) {
        throw new AssertionError("matcher refused token " + pick + " it had allowed, after: " + out.toString(StandardCharsets.UTF_8));
      }
      if (vocabulary.isEos(pick)) {
        if (!matcher.isComplete()) {
          throw new AssertionError("EOS accepted where the output is not complete: " + out.toString(StandardCharsets.UTF_8));
        }
        return new Result(out.toString(StandardCharsets.UTF_8), out.size(), step, true);
      }
      out.writeBytes(vocabulary.tokenBytes(pick));
    }
    return new Result(out.toString(StandardCharsets.UTF_8), out.size(), maxTokens, false);
  }
}
