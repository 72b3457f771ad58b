package sphinxserve.structured;

/**
 * A grammar, regular expression or choice that cannot be compiled: a syntax error, an undefined or
 * left-recursive rule, or a compile that exceeds its size or time budget. The message says what and where;
 * {@link #line()} and {@link #column()} locate it in the source text when there is one.
 */
public final class GrammarException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  private final int line;
  private final int column;

  /** An error at a 1-based {@code line} and {@code column} of the source (0, 0 when it has no place). */
  public GrammarException(String message, int line, int column) {
    this(line > 0 ? message + " at line " + line + ", column " + column : message, line, column, true);
  }

  /** An error whose {@code fullMessage} already says where it is. */
  GrammarException(String fullMessage, int line, int column, boolean located) {
    super(fullMessage);
    this.line = line;
    this.column = column;
  }

  /** An error about the grammar as a whole (a budget, a missing root), or about a source that is not text. */
  public GrammarException(String message) {
    this(message, 0, 0);
  }

  /** 1-based line of the error in the source text; 0 when the error has no place. */
  public int line() {
    return line;
  }

  /** 1-based column (in UTF-16 units) of the error in the source text; 0 when the error has no place. */
  public int column() {
    return column;
  }
}
