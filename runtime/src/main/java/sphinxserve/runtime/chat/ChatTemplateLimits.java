package sphinxserve.runtime.chat;

import java.time.Duration;
import java.util.Objects;

/**
 * The hard budgets of one chat-template render: past any of them the render ends with a
 * {@link ChatTemplateException} naming the {@link ChatTemplateException.Budget}, whatever the template does.
 *
 * @param maxOutputChars most characters of rendered prompt, and of any one string the template builds
 * @param maxIterations most template steps per render: every {@code range()} item, and every text, expression or
 *     tag rendered (each loop iteration renders at least one of those), and every filter call
 * @param maxDepth most nested macro calls (recursion included) and nested renders
 * @param timeout longest wall time of one render, checked at every step
 */
public record ChatTemplateLimits(long maxOutputChars, long maxIterations, int maxDepth, Duration timeout) {

  /** 256 Ki characters of prompt, 100,000 steps, 64 nested calls, 2 s. */
  public static final ChatTemplateLimits DEFAULTS = new ChatTemplateLimits(1L << 18, 100_000, 64, Duration.ofSeconds(2));

  public ChatTemplateLimits {
    Objects.requireNonNull(timeout, "timeout");
    if (maxOutputChars < 1 || maxIterations < 1 || maxDepth < 1 || timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("chat template limits must be positive: " + maxOutputChars + " chars, "
          + maxIterations + " iterations, depth " + maxDepth + ", " + timeout);
    }
  }

  /** These limits with {@code maxOutputChars} replaced. */
  public ChatTemplateLimits withMaxOutputChars(long chars) {
    return new ChatTemplateLimits(chars, maxIterations, maxDepth, timeout);
  }

  /** These limits with {@code maxIterations} replaced. */
  public ChatTemplateLimits withMaxIterations(long iterations) {
    return new ChatTemplateLimits(maxOutputChars, iterations, maxDepth, timeout);
  }

  /** These limits with {@code timeout} replaced. */
  public ChatTemplateLimits withTimeout(Duration wallTime) {
    return new ChatTemplateLimits(maxOutputChars, maxIterations, maxDepth, wallTime);
  }
}
