package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Grammars made of another grammar between fixed texts, repeated: a tool call's JSON inside a model's markers
 * ({@code <tool_call>\n{...}\n</tool_call>}), one or several times.
 */
public final class WrappedGrammars {

  /** Prefix given to the inner grammar's rule names, so they cannot clash with the new root. */
  static final String PREFIX = "wrapped-";

  private WrappedGrammars() {}

  /**
   * The grammar of {@code before inner after}, {@code min} to {@code max} times, joined by {@code separator}.
   *
   * @throws IllegalArgumentException unless {@code 1 <= min <= max}
   */
  public static Grammar wrap(Grammar inner, String before, String after, int min, int max, String separator) {
    Objects.requireNonNull(inner, "inner");
    if (min < 1 || max < min) throw new IllegalArgumentException("need 1 <= min <= max, got " + min + ".." + max);
    List<Grammar.Rule> rules = new ArrayList<>();
    for (Grammar.Rule r : inner.rules().values()) {
      rules.add(new Grammar.Rule(PREFIX + r.name(), renamed(r.body()), r.line(), r.column()));
    }
    Expr one = new Expr.Seq(List.of(new Expr.Literal(before), new Expr.Ref(PREFIX + Grammar.ROOT, 0, 0), new Expr.Literal(after)));
    Expr root = max == 1 ? one
        : new Expr.Seq(List.of(one, new Expr.Repeat(new Expr.Seq(List.of(new Expr.Literal(separator), one)), min - 1, max - 1)));
    rules.addFirst(new Grammar.Rule(Grammar.ROOT, root, 0, 0));
    return new Grammar(rules);
  }

  /** {@code e} with every rule reference renamed by {@link #PREFIX}. */
  private static Expr renamed(Expr e) {
    return switch (e) {
      case Expr.Ref r -> new Expr.Ref(PREFIX + r.name(), r.line(), r.column());
      case Expr.Seq s -> new Expr.Seq(s.items().stream().map(WrappedGrammars::renamed).toList());
      case Expr.Alt a -> new Expr.Alt(a.options().stream().map(WrappedGrammars::renamed).toList());
      case Expr.Repeat r -> new Expr.Repeat(renamed(r.body()), r.min(), r.max());
      case Expr.Literal l -> l;
      case Expr.CharSet c -> c;
    };
  }
}
