package sphinxserve.api;

/**
 * A compiled constraint on a request's output tokens (a grammar, a JSON Schema, ...). Thread-safe and shared by
 * every request that asks for the same constraint; each request walks it with its own {@link Matcher}.
 */
public interface TokenConstraint {

  /** A fresh matcher at the start of an answer. */
  Matcher newMatcher();

  /** One answer's position in the constraint's language. Confined to one thread at a time. */
  interface Matcher {

    /** Sets the bits of the tokens that keep the answer a valid prefix (EOS ids only where it is complete). */
    void fillAllowed(long[] allowedBits);

    /** Advances by {@code tokenId}; false, with the state unchanged, when the token is not allowed. */
    boolean accept(int tokenId);

    /** Whether the answer so far is a complete sentence of the language (EOS is allowed). */
    boolean isComplete();

    /** Whether nothing but EOS can follow. */
    boolean isTerminated();
  }
}
