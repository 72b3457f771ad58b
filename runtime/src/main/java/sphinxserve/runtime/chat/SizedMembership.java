package sphinxserve.runtime.chat;

import com.hubspot.jinjava.el.ext.CollectionMembershipOperator;
import com.hubspot.jinjava.el.ext.CollectionNonMembershipOperator;
import java.util.Collection;
import jinjava.de.odysseus.el.misc.TypeConverter;
import jinjava.de.odysseus.el.tree.impl.Parser;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;

/**
 * Jinja's {@code x in xs} and {@code x not in xs} with the scan of a list charged to the render's
 * {@link RenderBudget}, one step per item, as a loop over it would be.
 */
final class SizedMembership {
  /*
   * jinjava parses `in` and `not in` through parser extension handlers (not createAstBinary), whose operators scan
   * the whole collection in one expression step; `{% for i in range(n) %}{{ -1 in l }}` is then O(n * len(l))
   * steps the budget never saw. JinjaSyntax's parser installs these handlers over jinjava's.
   */

  private SizedMembership() {}

  /** The handler for {@code in}. */
  static final Parser.ExtensionHandler IN = handler(new In());

  /** The handler for {@code not in}. */
  static final Parser.ExtensionHandler NOT_IN = handler(new NotIn());

  private static Parser.ExtensionHandler handler(AstBinary.Operator operator) {
    return new Parser.ExtensionHandler(Parser.ExtensionPoint.CMP) {
      @Override
      public AstNode createAstNode(AstNode... children) {
        return new AstBinary(children[0], children[1], operator);
      }
    };
  }

  private static void charge(Object collection) {
    if (collection instanceof Collection<?> items) {
      RenderBudget.chargeSteps(items.size());
    } else if (collection instanceof CharSequence s) {
      RenderBudget.chargeSteps(s.length() / 64); // a substring search, far cheaper per character than an item
    }
  }

  private static final class In extends CollectionMembershipOperator {
    @Override
    public Object apply(TypeConverter converter, Object value, Object collection) {
      charge(collection);
      return super.apply(converter, value, collection);
    }
  }

  private static final class NotIn extends CollectionNonMembershipOperator {
    @Override
    public Object apply(TypeConverter converter, Object value, Object collection) {
      charge(collection);
      return super.apply(converter, value, collection);
    }
  }
}
