package sphinxserve.structured;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A grammar lowered to bytes, llama.cpp style: rules are lists of alternatives, each a sequence of elements
 * ending in {@link #END}; an element is a terminal (a set of bytes) or a reference to a rule. Immutable once
 * built; shared by every matcher of a compiled grammar.
 */
final class ByteProgram {
  /*
   * Lowering (Builder):
   *   - a literal becomes one singleton byte set per UTF-8 byte;
   *   - a code-point set within ASCII becomes one byte set; a wider one becomes a rule whose alternatives are
   *     its UTF-8 byte-range sequences (Utf8Sequences), one rule per distinct set;
   *   - a group of alternatives becomes a rule;
   *   - a repetition of a body that lowers to more than one element first makes the body a rule, so a counted
   *     repetition never copies more than one element per count: x{m,n} is m copies of the unit then a chain
   *     opt_k ::= unit opt_(k-1) | (empty); x* is star ::= unit star | (empty). Every generated recursion is in
   *     tail position, so the matcher's tail calls keep loops from growing the stack.
   * Size is linear in the source; MAX_ELEMENTS and the deadline bound it (a compile never stalls).
   *
   * Encoding of code[]: an element >= 0 is a byte-set id (4 words of byteSets), END is -1, a reference to rule r
   * is -(r + 2).
   */

  /** End of an alternative. */
  static final int END = -1;

  final int[] code;
  final int[][] ruleAlternatives;
  final long[] byteSets;
  final String[] ruleNames;
  final int rootRule;

  private ByteProgram(int[] code, int[][] ruleAlternatives, long[] byteSets, String[] ruleNames, int rootRule) {
    this.code = code;
    this.ruleAlternatives = ruleAlternatives;
    this.byteSets = byteSets;
    this.ruleNames = ruleNames;
    this.rootRule = rootRule;
  }

  /** The element referring to rule {@code rule}. */
  static int ref(int rule) {
    return -(rule + 2);
  }

  /** The rule an element {@code <= -2} refers to. */
  static int refRule(int element) {
    return -element - 2;
  }

  /** Whether byte set {@code set} holds byte {@code b} (0..255). */
  boolean matches(int set, int b) {
    return (byteSets[set * 4 + (b >>> 6)] >>> (b & 63) & 1L) != 0;
  }

  /** Elements in the program (its size for budgets and reports). */
  int size() {
    return code.length;
  }

  /** Lowers {@code grammar}; throws when it needs more than {@code maxElements} elements or runs past {@code deadlineNanos}. */
  static ByteProgram lower(Grammar grammar, int maxElements, long deadlineNanos) {
    return new Builder(grammar, maxElements, deadlineNanos).build();
  }

  /** Growable int list. */
  private static final class IntList {
    int[] a = new int[8];
    int n;

    void add(int v) {
      if (n == a.length) a = Arrays.copyOf(a, n * 2);
      a[n++] = v;
    }
  }

  private static final class Builder {
    private final Grammar grammar;
    private final int maxElements;
    private final long deadlineNanos;
    private final Map<String, Integer> userRules = new HashMap<>();
    private final List<String> names = new ArrayList<>();
    private final List<List<IntList>> alternatives = new ArrayList<>();
    private final Map<Quad, Integer> setIds = new HashMap<>();
    private long[] sets = new long[64];
    private int numSets;
    private final Map<Ranges, Integer> classRules = new HashMap<>();
    private long numElements;
    private int numChecks;

    Builder(Grammar grammar, int maxElements, long deadlineNanos) {
      this.grammar = grammar;
      this.maxElements = maxElements;
      this.deadlineNanos = deadlineNanos;
    }

    ByteProgram build() {
      for (String name : grammar.rules().keySet()) userRules.put(name, newRule(name));
      for (Grammar.Rule rule : grammar.rules().values()) {
        int id = userRules.get(rule.name());
        if (rule.body() instanceof Expr.Alt alt) {
          for (Expr option : alt.options()) alternatives.get(id).add(emitAlternative(option));
        } else {
          alternatives.get(id).add(emitAlternative(rule.body()));
        }
      }
      IntList code = new IntList();
      int[][] ruleAlts = new int[alternatives.size()][];
      for (int r = 0; r < alternatives.size(); r++) {
        List<IntList> alts = alternatives.get(r);
        ruleAlts[r] = new int[alts.size()];
        for (int k = 0; k < alts.size(); k++) {
          ruleAlts[r][k] = code.n;
          IntList alt = alts.get(k);
          for (int i = 0; i < alt.n; i++) code.add(alt.a[i]);
          code.add(END);
        }
      }
      return new ByteProgram(Arrays.copyOf(code.a, code.n), ruleAlts, Arrays.copyOf(sets, numSets * 4),
          names.toArray(String[]::new), userRules.get(Grammar.ROOT));
    }

    private int newRule(String name) {
      names.add(name);
      alternatives.add(new ArrayList<>());
      return names.size() - 1;
    }

    private IntList emitAlternative(Expr e) {
      IntList out = new IntList();
      emit(e, out);
      count(1); // END
      return out;
    }

    private void emit(Expr e, IntList out) {
      switch (e) {
        case Expr.Literal l -> {
          for (byte b : l.text().getBytes(java.nio.charset.StandardCharsets.UTF_8)) add(out, singleton(b & 0xFF));
        }
        case Expr.CharSet c -> {
          int[] r = c.ranges();
          if (r[r.length - 1] < 0x80) {
            add(out, byteSet(r));
          } else if (r.length == 2 && r[0] == r[1]) {
            emit(new Expr.Literal(new String(Character.toChars(r[0]))), out);
          } else {
            add(out, ByteProgram.ref(classRule(r)));
          }
        }
        case Expr.Seq s -> {
          for (Expr item : s.items()) emit(item, out);
        }
        case Expr.Alt a -> {
          if (a.options().size() == 1) {
            emit(a.options().get(0), out);
          } else {
            int rule = newRule("alt-" + names.size());
            for (Expr option : a.options()) alternatives.get(rule).add(emitAlternative(option));
            add(out, ByteProgram.ref(rule));
          }
        }
        case Expr.Ref ref -> add(out, ByteProgram.ref(userRules.get(ref.name())));
        case Expr.Repeat r -> emitRepeat(r, out);
      }
    }

    private void emitRepeat(Expr.Repeat r, IntList out) {
      if (r.max() == 0) return;
      IntList body = new IntList();
      emit(r.body(), body);
      if (body.n == 0) return; // a repetition of the empty string is the empty string
      int unit;
      if (body.n == 1) {
        unit = body.a[0];
      } else {
        int rule = newRule("group-" + names.size());
        alternatives.get(rule).add(body);
        count(1);
        unit = ByteProgram.ref(rule);
      }
      for (int i = 0; i < r.min(); i++) add(out, unit);
      if (r.max() == Expr.Repeat.UNBOUNDED) {
        int star = newRule("star-" + names.size());
        IntList loop = new IntList();
        add(loop, unit);
        add(loop, ByteProgram.ref(star));
        alternatives.get(star).add(loop);
        alternatives.get(star).add(new IntList());
        count(2);
        add(out, ByteProgram.ref(star));
        return;
      }
      int previous = -1;
      for (int k = 1; k <= r.max() - r.min(); k++) {
        int opt = newRule("opt-" + names.size());
        IntList some = new IntList();
        add(some, unit);
        if (previous >= 0) add(some, ByteProgram.ref(previous));
        alternatives.get(opt).add(some);
        alternatives.get(opt).add(new IntList());
        count(2);
        previous = opt;
      }
      if (previous >= 0) add(out, ByteProgram.ref(previous));
    }

    private int classRule(int[] ranges) {
      Ranges key = new Ranges(ranges);
      Integer known = classRules.get(key);
      if (known != null) return known;
      int rule = newRule("class-" + names.size());
      for (int[] seq : Utf8Sequences.of(ranges)) {
        IntList alt = new IntList();
        for (int i = 0; i < seq.length; i += 2) {
          Quad q = new Quad();
          for (int b = seq[i]; b <= seq[i + 1]; b++) q.set(b);
          add(alt, setId(q));
        }
        alternatives.get(rule).add(alt);
        count(1);
      }
      classRules.put(key, rule);
      return rule;
    }

    private int singleton(int b) {
      Quad q = new Quad();
      q.set(b);
      return setId(q);
    }

    private int byteSet(int[] asciiRanges) {
      Quad q = new Quad();
      for (int i = 0; i < asciiRanges.length; i += 2) {
        for (int b = asciiRanges[i]; b <= asciiRanges[i + 1]; b++) q.set(b);
      }
      return setId(q);
    }

    private int setId(Quad q) {
      Integer id = setIds.get(q);
      if (id != null) return id;
      if ((numSets + 1) * 4 > sets.length) sets = Arrays.copyOf(sets, sets.length * 2);
      System.arraycopy(q.w, 0, sets, numSets * 4, 4);
      setIds.put(q, numSets);
      return numSets++;
    }

    private void add(IntList out, int element) {
      out.add(element);
      count(1);
    }

    private void count(int n) {
      numElements += n;
      if (numElements > maxElements) {
        throw new GrammarException("grammar: too large once compiled (more than " + maxElements
            + " elements; large counted repetitions such as {0,100000} add up)");
      }
      if ((++numChecks & 0xFFF) == 0 && System.nanoTime() - deadlineNanos > 0) {
        throw new GrammarException("grammar: compile exceeded its time budget");
      }
    }
  }

  /** A 256-bit byte set, usable as a map key. */
  private static final class Quad {
    final long[] w = new long[4];

    void set(int b) {
      w[b >>> 6] |= 1L << (b & 63);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Quad q && Arrays.equals(w, q.w);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(w);
    }
  }

  /** A code-point set as a map key. */
  private record Ranges(int[] r) {
    @Override
    public boolean equals(Object o) {
      return o instanceof Ranges other && Arrays.equals(r, other.r);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(r);
    }
  }
}
