package sphinxserve.api;

/**
 * A constraint on a request's output: at each step only tokens that keep the output a valid prefix of the
 * constraint's language may be sampled, and EOS only where the output is complete. Implementations are
 * immutable and thread-safe, shared by every request that asks for the same constraint; each request gets its
 * own {@link Matcher}.
 */
public interface TokenConstraint {

  /** A fresh matcher at the start of the output. */
  Matcher newMatcher();

  /**
   * One request's position in the constraint's language. Not thread-safe: confined to the thread that samples
   * the request at that moment (the engine hands a request to one sampler thread per step).
   */
  interface Matcher {

    /**
     * Sets in {@code allowedBits} (bit {@code id % 64} of word {@code id / 64}, cleared first by this method)
     * exactly the tokens that may come next: those whose bytes keep the output a valid prefix, and the EOS ids
     * when the output is complete. Special tokens other than EOS are never set.
     *
     * @param allowedBits at least {@code ceil(vocabSize / 64)} words
     */
    void fillAllowed(long[] allowedBits);

    /**
     * Advances past {@code tokenId} and answers {@code true}; answers {@code false} and stays where it was when
     * the token is not allowed here.
     */
    boolean accept(int tokenId);

    /** Whether the output so far is a complete sentence of the language (EOS is allowed). */
    boolean isComplete();

    /** Whether nothing but EOS can come next: complete, and no token can extend the output. */
    boolean isTerminated();
  }
}
