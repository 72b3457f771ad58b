package sphinxserve.runtime.chat;

/**
 * The spending of one render against its {@link ChatTemplateLimits}: steps, characters, depth and wall time,
 * charged from jinjava's node pre-processor and from the functions, filters and methods the sandbox provides.
 * Not thread-safe: a render runs on one thread, which {@link #open} binds it to.
 */
final class RenderBudget implements AutoCloseable {
  /*
   * jinjava renders synchronously on the caller's thread and calls our hooks (the node pre-processor, range(),
   * filters, Python methods) with no handle of ours, so the render's budget travels in a thread local that open()
   * sets and close() clears. Once a budget is spent the exception is kept and thrown again at every later charge:
   * jinjava catches exceptions in some paths (a for loop turns some into recorded errors and carries on), and a
   * spent budget must stop the render there too; JinjaChatTemplate.render reports the kept exception afterwards
   * whatever jinjava made of it.
   */

  private static final ThreadLocal<RenderBudget> CURRENT = new ThreadLocal<>();

  private final ChatTemplateLimits limits;
  private final String sourceName;
  private final long deadlineNanos;
  private long steps;
  private ChatTemplateException spent;

  private RenderBudget(ChatTemplateLimits limits, String sourceName) {
    this.limits = limits;
    this.sourceName = sourceName;
    this.deadlineNanos = System.nanoTime() + limits.timeout().toNanos();
  }

  /** A budget for a render starting now on this thread; close it when the render ends. */
  static RenderBudget open(ChatTemplateLimits limits, String sourceName) {
    RenderBudget budget = new RenderBudget(limits, sourceName);
    CURRENT.set(budget);
    return budget;
  }

  /** The budget of the render running on this thread; null outside a render. */
  static RenderBudget current() {
    return CURRENT.get();
  }

  /** Charges {@code n} steps to the current render, if any (see {@link #steps}). */
  static void chargeSteps(long n) {
    RenderBudget budget = CURRENT.get();
    if (budget != null) {
      budget.steps(n);
    }
  }

  /** Checks a string of {@code length} characters about to be built against the current render, if any. */
  static void chargeChars(long length) {
    RenderBudget budget = CURRENT.get();
    if (budget != null) {
      budget.chars(length);
    }
  }

  /** Checks a nesting {@code depth} of the current render, if any, against its depth limit ({@code what} says where). */
  static void chargeDepth(long depth, String what) {
    RenderBudget budget = CURRENT.get();
    if (budget != null) {
      budget.throwIfSpent();
      if (depth > budget.limits.maxDepth()) {
        budget.spend(ChatTemplateException.Budget.DEPTH, what);
      }
    }
  }

  /** Counts {@code n} steps (a node, a range() item, a filter call) and checks the wall time. */
  void steps(long n) {
    throwIfSpent();
    steps += n;
    if (steps > limits.maxIterations() || steps < 0) {
      spend(ChatTemplateException.Budget.ITERATIONS, "more than " + limits.maxIterations() + " template iterations");
    }
    if (System.nanoTime() - deadlineNanos > 0) {
      spend(ChatTemplateException.Budget.TIME, "rendering took longer than " + limits.timeout().toMillis() + " ms");
    }
  }

  /** Checks a string or output of {@code length} characters. */
  void chars(long length) {
    throwIfSpent();
    if (length > limits.maxOutputChars()) {
      spend(ChatTemplateException.Budget.OUTPUT_CHARS, "more than " + limits.maxOutputChars() + " characters of output");
    }
  }

  /** The exception of the spent budget, or null while none is. */
  ChatTemplateException spent() {
    return spent;
  }

  /** These limits. */
  ChatTemplateLimits limits() {
    return limits;
  }

  private void throwIfSpent() {
    if (spent != null) {
      throw spent;
    }
  }

  /** Records that the render went past {@code budget} ({@code what} says how) and throws. */
  void spend(ChatTemplateException.Budget budget, String what) {
    if (spent == null) {
      spent = new ChatTemplateException(sourceName + ": chat template over its budget of " + budget.description() + ": "
          + what, null, budget);
    }
    throw spent;
  }

  @Override
  public void close() {
    CURRENT.remove();
  }
}
