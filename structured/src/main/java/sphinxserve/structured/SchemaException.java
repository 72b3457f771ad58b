package sphinxserve.structured;

/**
 * A JSON Schema (or a pattern inside one) that cannot be turned into a grammar: unsupported, malformed or
 * unsatisfiable. {@link #path()} is the JSON pointer of the offending keyword, e.g.
 * {@code #/properties/age/multipleOf}, so an API can answer 400 naming it.
 */
public final class SchemaException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  /** JSON pointer (URI fragment form) of the keyword at fault. */
  private final String path;

  /** An error at {@code path}; the message is prefixed with the path. */
  public SchemaException(String path, String reason) {
    super(path + ": " + reason);
    this.path = path;
  }

  /** JSON pointer of the keyword at fault, {@code #} for the whole schema. */
  public String path() {
    return path;
  }
}
