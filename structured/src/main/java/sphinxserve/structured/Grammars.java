package sphinxserve.structured;

import java.util.Objects;

/** Compiles {@link Grammar}s against a vocabulary: the entry point the API layer calls. Thread-safe. */
public final class Grammars {
  private Grammars() {}

  /** Largest byte-level program a compile may build (elements; a 20-property JSON schema needs a few thousand). */
  public static final int MAX_PROGRAM_ELEMENTS = 4_000_000;

  /** Longest a compile may run before it is refused, in milliseconds. */
  public static final long COMPILE_BUDGET_MILLIS = 2_000;

  /**
   * Compiles {@code grammar} for {@code vocabulary}. The result is immutable, thread-safe and meant to be cached
   * and shared by every request with the same constraint.
   *
   * @throws GrammarException when the grammar exceeds {@link #MAX_PROGRAM_ELEMENTS} or
   *     {@link #COMPILE_BUDGET_MILLIS}, or its root matches nothing
   */
  public static CompiledGrammar compile(Grammar grammar, TokenVocabulary vocabulary) {
    Objects.requireNonNull(grammar, "grammar");
    Objects.requireNonNull(vocabulary, "vocabulary");
    long deadline = System.nanoTime() + COMPILE_BUDGET_MILLIS * 1_000_000;
    ByteProgram program = ByteProgram.lower(grammar, MAX_PROGRAM_ELEMENTS, deadline);
    return new CompiledGrammar(grammar, program, vocabulary);
  }
}
