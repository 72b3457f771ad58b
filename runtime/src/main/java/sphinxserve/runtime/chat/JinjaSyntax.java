package sphinxserve.runtime.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.el.ExtendedSyntaxBuilder;
import com.hubspot.jinjava.el.TruthyTypeConverter;
import com.hubspot.jinjava.el.ext.AdditionOperator;
import com.hubspot.jinjava.el.ext.CollectionMembershipOperator;
import com.hubspot.jinjava.el.ext.CollectionNonMembershipOperator;
import com.hubspot.jinjava.el.ext.ExtendedParser;
import java.util.Properties;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.tree.TreeBuilder;
import jinjava.de.odysseus.el.tree.impl.Builder;
import jinjava.de.odysseus.el.tree.impl.Parser;
import jinjava.de.odysseus.el.tree.impl.Scanner;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstUnary;
import jinjava.javax.el.ExpressionFactory;

/**
 * Jinja's precedence of {@code not} in jinjava's expression parser: {@code not x is defined} is
 * {@code not (x is defined)} and {@code not a == b} is {@code not (a == b)}, as in Python's Jinja; and
 * {@code +}, {@code in} and {@code not in} as {@link SizedAddition} and {@link SizedMembership}, charged to the
 * render's budget.
 */
final class JinjaSyntax {
  /*
   * Jinja parses `not` between `and` and the comparisons (parse_not -> parse_compare), so its operand is a
   * whole comparison, and `is` tests bind as tightly as filters. jinjava's parser (JUEL underneath) treats `not`
   * as a tight unary operator: with its legacy precedence `not xs|length == 1` is `(not xs)|length == 1`,
   * with natural precedence `not x is defined` is `(not x) is defined`, which is true whenever x IS defined.
   * Every Llama 3.x template opens with `{%- if not date_string is defined %}` and the like, so either mode
   * renders them wrong. Natural precedence plus this parser, which reads a leading `not` at the equality
   * level, matches Jinja. jinjava has no parser setting, so JinjaSyntax.engine subclasses Jinjava to hand out
   * an expression factory built with this parser (the way Jinjava builds its own).
   */

  private JinjaSyntax() {}

  /** A Jinjava whose expressions parse {@code not} as Jinja does. */
  static Jinjava engine(JinjavaConfig config) {
    Properties properties = new Properties();
    properties.setProperty(TreeBuilder.class.getName(), NotAwareSyntaxBuilder.class.getName());
    ExpressionFactory factory = new ExpressionFactoryImpl(properties, new TruthyTypeConverter());
    return new Jinjava(config) {
      @Override
      public ExpressionFactory getExpressionFactory() {
        return factory;
      }
    };
  }

  /** jinjava's syntax builder, with {@link NotAwareParser}. Public: JUEL instantiates it by class name. */
  public static final class NotAwareSyntaxBuilder extends ExtendedSyntaxBuilder {
    private static final long serialVersionUID = 1L;

    public NotAwareSyntaxBuilder() {}

    public NotAwareSyntaxBuilder(Builder.Feature... features) {
      super(features);
    }

    @Override
    protected Parser createParser(String expression) {
      return new NotAwareParser(this, expression);
    }
  }

  /** Reads {@code not <comparison>} at the equality level. */
  static final class NotAwareParser extends ExtendedParser {
    NotAwareParser(Builder context, String input) {
      super(context, input);
      putExtensionHandler(CollectionMembershipOperator.TOKEN, SizedMembership.IN);
      putExtensionHandler(CollectionNonMembershipOperator.TOKEN, SizedMembership.NOT_IN);
    }

    @Override
    protected AstNode eq(boolean required) throws Scanner.ScanException, ParseException {
      if (getToken().getSymbol() == Scanner.Symbol.NOT) {
        consumeToken();
        return createAstUnary(eq(true), AstUnary.NOT);
      }
      return super.eq(required);
    }

    @Override
    protected AstBinary createAstBinary(AstNode left, AstNode right, AstBinary.Operator operator) {
      return super.createAstBinary(left, right, operator == AdditionOperator.OP ? SizedAddition.OP : operator);
    }
  }
}
