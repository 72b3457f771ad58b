package sphinxserve.structured;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Random sentences of a {@link Grammar}, drawn from its IR: alternatives and repetition counts at random, and,
 * once past a depth budget, always the shortest choice (so every draw ends). Test helper.
 */
final class SentenceGenerator {
  private final Grammar grammar;
  private final SplittableRandom random;
  private final Map<String, Integer> minLength = new HashMap<>();
  private final int maxDepth;

  SentenceGenerator(Grammar grammar, long seed, int maxDepth) {
    this.grammar = grammar;
    this.random = new SplittableRandom(seed);
    this.maxDepth = maxDepth;
    // Shortest sentence length per rule, by fixpoint (unbounded until known).
    for (String name : grammar.rules().keySet()) minLength.put(name, Integer.MAX_VALUE / 4);
    boolean changed = true;
    while (changed) {
      changed = false;
      for (Grammar.Rule r : grammar.rules().values()) {
        int m = min(r.body());
        if (m < minLength.get(r.name())) {
          minLength.put(r.name(), m);
          changed = true;
        }
      }
    }
  }

  String next() {
    StringBuilder sb = new StringBuilder();
    emit(grammar.rules().get(Grammar.ROOT).body(), sb, 0);
    return sb.toString();
  }

  private int min(Expr e) {
    return switch (e) {
      case Expr.Literal l -> l.text().length();
      case Expr.CharSet c -> 1;
      case Expr.Seq s -> s.items().stream().mapToInt(this::min).reduce(0, (a, b) -> Math.min(Integer.MAX_VALUE / 4, a + b));
      case Expr.Alt a -> a.options().stream().mapToInt(this::min).min().orElse(0);
      case Expr.Repeat r -> (int) Math.min(Integer.MAX_VALUE / 4, (long) r.min() * min(r.body()));
      case Expr.Ref ref -> minLength.get(ref.name());
    };
  }

  private void emit(Expr e, StringBuilder out, int depth) {
    boolean deep = depth > maxDepth;
    switch (e) {
      case Expr.Literal l -> out.append(l.text());
      case Expr.CharSet c -> out.appendCodePoint(pick(c.ranges()));
      case Expr.Seq s -> {
        for (Expr item : s.items()) emit(item, out, depth + 1);
      }
      case Expr.Alt a -> {
        List<Expr> options = a.options();
        Expr chosen = options.get(random.nextInt(options.size()));
        if (deep) {
          for (Expr o : options) {
            if (min(o) < min(chosen)) chosen = o;
          }
        }
        emit(chosen, out, depth + 1);
      }
      case Expr.Repeat r -> {
        int extra = r.max() == Expr.Repeat.UNBOUNDED ? random.nextInt(4) : random.nextInt(Math.min(r.max() - r.min(), 6) + 1);
        int n = r.min() + (deep ? 0 : extra);
        for (int i = 0; i < n; i++) emit(r.body(), out, depth + 1);
      }
      case Expr.Ref ref -> emit(grammar.rules().get(ref.name()).body(), out, depth + 1);
    }
  }

  /** A code point from a set, mostly ASCII where the set has some, sometimes from anywhere in it. */
  private int pick(int[] ranges) {
    int k = 2 * random.nextInt(ranges.length / 2);
    if (random.nextInt(3) > 0 && ranges[0] < 0x80) k = 0;
    int lo = ranges[k];
    int hi = Math.min(ranges[k + 1], lo + 200);
    return lo + random.nextInt(hi - lo + 1);
  }
}
