package sphinxserve.runtime.chat;

import com.hubspot.jinjava.el.ext.AdditionOperator;
import java.util.Collection;
import java.util.Map;
import jinjava.de.odysseus.el.misc.TypeConverter;

/**
 * jinjava's {@code +} with the collection it builds charged to the render's {@link RenderBudget} first: one step
 * per item of a concatenated list or merged dict, and the length of a concatenated string.
 */
final class SizedAddition extends AdditionOperator {
  /*
   * AdditionOperator copies both lists (new ArrayList(a).addAll(b)) or both dicts whole, outside jinjava's list
   * and map size limits, which only SizeLimitingPyList/PyMap appends check. `{% set ns.l = ns.l + ns.l %}` in a
   * loop doubles a list each time, and twenty doublings of range(50000) is an OutOfMemoryError. Charging the
   * result's size as steps before copying makes the copy cost what it builds, so the doubling ends on the
   * iteration budget after a few rounds.
   */

  /** The operator the sandbox's parser builds for {@code +}. */
  static final SizedAddition OP = new SizedAddition();

  private SizedAddition() {}

  @Override
  protected Object apply(TypeConverter converter, Object a, Object b) {
    if (a instanceof Collection<?> left) {
      RenderBudget.chargeSteps((long) left.size() + (b instanceof Collection<?> right ? right.size() : 1));
    } else if (a instanceof Map<?, ?> left && b instanceof Map<?, ?> right) {
      RenderBudget.chargeSteps((long) left.size() + right.size());
    } else if (a instanceof String left && b instanceof String right) {
      RenderBudget.chargeChars((long) left.length() + right.length());
    }
    return super.apply(converter, a, b);
  }
}
