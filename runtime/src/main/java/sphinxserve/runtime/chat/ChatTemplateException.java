package sphinxserve.runtime.chat;

import java.util.Optional;

/**
 * A chat template failed to compile or render: its message names the template source, what failed (the
 * template's own {@code raise_exception} message, jinjava's error, or the {@link Budget} the render ran past) and
 * the line where jinjava reports one.
 */
public final class ChatTemplateException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** A budget of {@link ChatTemplateLimits} a render ran past. */
  public enum Budget {
    /** {@link ChatTemplateLimits#maxOutputChars}: the prompt, or a string built on the way, is too long. */
    OUTPUT_CHARS("rendered prompt characters"),
    /** {@link ChatTemplateLimits#maxIterations}: too many loop iterations, range() items or template steps. */
    ITERATIONS("template iterations"),
    /** {@link ChatTemplateLimits#maxDepth}: macro recursion or nesting too deep. */
    DEPTH("template call depth"),
    /** {@link ChatTemplateLimits#timeout}: the render took too long. */
    TIME("template render time");

    private final String description;

    Budget(String description) {
      this.description = description;
    }

    /** What the budget bounds, in words ("template iterations"). */
    public String description() {
      return description;
    }
  }

  private final transient Budget budget;

  ChatTemplateException(String message) {
    this(message, null, null);
  }

  ChatTemplateException(String message, Throwable cause) {
    this(message, cause, null);
  }

  ChatTemplateException(String message, Throwable cause, Budget budget) {
    super(message, cause);
    this.budget = budget;
  }

  /** The budget the render ran past; empty when the template failed otherwise. */
  public Optional<Budget> budget() {
    return Optional.ofNullable(budget);
  }
}
