package sphinxserve.structured;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Refuses left-recursive grammars: a rule that can reach itself again without consuming a byte would make the
 * pushdown matcher expand forever (llama.cpp refuses them too). A rule reaches the rules referenced at its
 * leftmost positions, looking through items that can match the empty string.
 */
final class LeftRecursion {
  private LeftRecursion() {}

  /** @throws GrammarException naming the first left-recursive rule and its cycle */
  static void check(Grammar grammar) {
    Map<String, Grammar.Rule> rules = grammar.rules();
    Map<String, Boolean> nullable = nullableRules(rules);
    Map<String, Set<String>> leftRefs = new HashMap<>();
    for (Grammar.Rule r : rules.values()) {
      Set<String> refs = new LinkedHashSet<>();
      leftRefs(r.body(), nullable, refs);
      leftRefs.put(r.name(), refs);
    }
    // Iterative DFS with colours; a grey successor closes a cycle.
    Map<String, Integer> colour = new HashMap<>();
    for (String start : rules.keySet()) {
      if (colour.containsKey(start)) continue;
      List<String> path = new ArrayList<>();
      List<java.util.Iterator<String>> iterators = new ArrayList<>();
      path.add(start);
      iterators.add(leftRefs.get(start).iterator());
      colour.put(start, 1);
      while (!path.isEmpty()) {
        java.util.Iterator<String> it = iterators.getLast();
        if (!it.hasNext()) {
          colour.put(path.removeLast(), 2);
          iterators.removeLast();
          continue;
        }
        String next = it.next();
        Integer c = colour.get(next);
        if (c == null) {
          colour.put(next, 1);
          path.add(next);
          iterators.add(leftRefs.getOrDefault(next, Set.of()).iterator());
        } else if (c == 1) {
          List<String> cycle = new ArrayList<>(path.subList(path.indexOf(next), path.size()));
          cycle.add(next);
          Grammar.Rule rule = rules.get(next);
          throw new GrammarException("rule '" + next + "' is left-recursive (" + String.join(" -> ", cycle)
              + " without consuming input); rewrite it with repetition, e.g. x ::= y (\"op\" y)*", rule.line(), rule.column());
        }
      }
    }
  }

  private static Map<String, Boolean> nullableRules(Map<String, Grammar.Rule> rules) {
    Map<String, Boolean> nullable = new HashMap<>();
    for (String name : rules.keySet()) nullable.put(name, false);
    boolean changed = true;
    while (changed) {
      changed = false;
      for (Grammar.Rule r : rules.values()) {
        if (!nullable.get(r.name()) && isNullable(r.body(), nullable)) {
          nullable.put(r.name(), true);
          changed = true;
        }
      }
    }
    return nullable;
  }

  /** Whether {@code e} matches the empty string, given the rules known to. */
  static boolean isNullable(Expr e, Map<String, Boolean> nullable) {
    return switch (e) {
      case Expr.Literal l -> l.text().isEmpty();
      case Expr.CharSet c -> false;
      case Expr.Seq s -> {
        for (Expr item : s.items()) {
          if (!isNullable(item, nullable)) yield false;
        }
        yield true;
      }
      case Expr.Alt a -> {
        for (Expr option : a.options()) {
          if (isNullable(option, nullable)) yield true;
        }
        yield false;
      }
      case Expr.Repeat r -> r.min() == 0 || isNullable(r.body(), nullable);
      case Expr.Ref ref -> nullable.getOrDefault(ref.name(), false);
    };
  }

  /** Adds to {@code out} the rules {@code e} may start with; answers whether {@code e} is nullable. */
  private static boolean leftRefs(Expr e, Map<String, Boolean> nullable, Set<String> out) {
    switch (e) {
      case Expr.Seq s -> {
        for (Expr item : s.items()) {
          if (!leftRefs(item, nullable, out)) return false;
        }
        return true;
      }
      case Expr.Alt a -> {
        boolean any = false;
        for (Expr option : a.options()) any |= leftRefs(option, nullable, out);
        return any;
      }
      case Expr.Repeat r -> {
        boolean bodyNullable = leftRefs(r.body(), nullable, out);
        return r.min() == 0 || bodyNullable;
      }
      case Expr.Ref ref -> {
        out.add(ref.name());
        return nullable.getOrDefault(ref.name(), false);
      }
      default -> {
        return isNullable(e, nullable);
      }
    }
  }

}
