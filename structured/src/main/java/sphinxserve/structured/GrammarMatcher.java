package sphinxserve.structured;

import java.util.Arrays;
import sphinxserve.api.TokenConstraint;

/**
 * One output's position in a {@link CompiledGrammar}: the matcher state after each accepted token, so that
 * {@link #rollback} and {@link #copy} are cheap (states are shared, immutable values). Not thread-safe: one
 * request's, used by one thread at a time.
 */
public final class GrammarMatcher implements TokenConstraint.Matcher {
  /** After EOS: the output is over. */
  private static final MatchState ENDED = new MatchState(new Frame[0], true, new long[4]);

  private final CompiledGrammar grammar;
  private MatchState[] history;
  private int numStates;

  GrammarMatcher(CompiledGrammar grammar, MatchState initial) {
    this.grammar = grammar;
    this.history = new MatchState[16];
    this.history[0] = initial;
    this.numStates = 1;
  }

  private GrammarMatcher(GrammarMatcher other) {
    this.grammar = other.grammar;
    this.history = other.history.clone();
    this.numStates = other.numStates;
  }

  /** The current configuration (tests and the benchmark reach it). */
  MatchState current() {
    return history[numStates - 1];
  }

  @Override
  public void fillAllowed(long[] allowedBits) {
    int words = grammar.vocabulary().numWords();
    if (allowedBits.length < words) {
      throw new IllegalArgumentException("allowedBits: " + allowedBits.length + " words, the vocabulary needs " + words);
    }
    MatchState s = current();
    if (s == ENDED) {
      Arrays.fill(allowedBits, 0L);
      return;
    }
    grammar.fillMask(s, allowedBits);
    Arrays.fill(allowedBits, words, allowedBits.length, 0L);
  }

  @Override
  public boolean accept(int tokenId) {
    TokenVocabulary v = grammar.vocabulary();
    MatchState s = current();
    if (tokenId < 0 || tokenId >= v.size() || s == ENDED) return false;
    if (v.isEos(tokenId)) {
      if (!s.accepting) return false;
      push(ENDED);
      return true;
    }
    byte[] bytes = v.bytesOf(tokenId);
    if (bytes.length == 0) return false; // a special token other than EOS: never inside the output
    MatchState n = grammar.next(s, bytes);
    if (n == MatchState.DEAD) return false;
    push(n);
    return true;
  }

  /**
   * Advances past raw output {@code bytes} (not a token) and answers {@code true}; answers {@code false} and
   * stays where it was when they are not a valid continuation. Counts as one step for {@link #rollback}.
   */
  public boolean acceptBytes(byte[] bytes) {
    MatchState s = current();
    if (s == ENDED) return false;
    MatchState n = grammar.next(s, bytes);
    if (n == MatchState.DEAD) return false;
    push(n);
    return true;
  }

  /** Whether the output so far is a complete sentence (EOS would be accepted), or EOS was accepted. */
  @Override
  public boolean isComplete() {
    return current().accepting;
  }

  /** Whether nothing but EOS can come next, or EOS was accepted. */
  @Override
  public boolean isTerminated() {
    MatchState s = current();
    return s.accepting && s.isFinal();
  }

  /** Whether EOS was accepted. */
  public boolean isEnded() {
    return current() == ENDED;
  }

  /** Steps (tokens or byte runs) accepted since the start. */
  public int numAccepted() {
    return numStates - 1;
  }

  /** Undoes the last {@code numSteps} accepted steps (speculative decoding, retries). */
  public void rollback(int numSteps) {
    if (numSteps < 0 || numSteps > numStates - 1) {
      throw new IllegalArgumentException("rollback: " + numSteps + " steps, " + (numStates - 1) + " accepted");
    }
    Arrays.fill(history, numStates - numSteps, numStates, null);
    numStates -= numSteps;
  }

  /** An independent matcher at the same position, sharing the immutable states. */
  public GrammarMatcher copy() {
    return new GrammarMatcher(this);
  }

  private void push(MatchState s) {
    if (numStates == history.length) history = Arrays.copyOf(history, numStates * 2);
    history[numStates++] = s;
  }
}
