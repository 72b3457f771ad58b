package sphinxserve.structured;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An immutable set of Unicode code points as sorted, disjoint, non-adjacent inclusive ranges
 * ({@code [start0, end0, start1, end1, ...]}). Regular-expression classes are built from these before they
 * are written out as GBNF classes.
 */
record CodePointSet(int[] ranges) {
  /** Largest code point. */
  static final int MAX = 0x10FFFF;

  /** No code point. */
  static final CodePointSet NONE = new CodePointSet(new int[0]);

  /** Every code point. */
  static final CodePointSet ALL = new CodePointSet(new int[] {0, MAX});

  /** One code point. */
  static CodePointSet of(int codePoint) {
    return range(codePoint, codePoint);
  }

  /** The code points {@code from..to}, inclusive. */
  static CodePointSet range(int from, int to) {
    return new CodePointSet(new int[] {from, to});
  }

  /** The code points of {@code chars}. */
  static CodePointSet chars(String chars) {
    CodePointSet set = NONE;
    for (int cp : chars.codePoints().toArray()) {
      set = set.union(of(cp));
    }
    return set;
  }

  /** Whether the set is empty. */
  boolean isEmpty() {
    return ranges.length == 0;
  }

  /** Whether {@code codePoint} is in the set. */
  boolean contains(int codePoint) {
    for (int i = 0; i < ranges.length; i += 2) {
      if (codePoint >= ranges[i] && codePoint <= ranges[i + 1]) {
        return true;
      }
    }
    return false;
  }

  /** The largest member; the set must not be empty. */
  int last() {
    return ranges[ranges.length - 1];
  }

  /** Code points in either set. */
  CodePointSet union(CodePointSet other) {
    List<int[]> all = new ArrayList<>();
    for (int i = 0; i < ranges.length; i += 2) {
      all.add(new int[] {ranges[i], ranges[i + 1]});
    }
    for (int i = 0; i < other.ranges.length; i += 2) {
      all.add(new int[] {other.ranges[i], other.ranges[i + 1]});
    }
    all.sort((a, b) -> Integer.compare(a[0], b[0]));
    List<Integer> merged = new ArrayList<>();
    for (int[] r : all) {
      int n = merged.size();
      if (n > 0 && r[0] <= merged.get(n - 1) + 1) {
        merged.set(n - 1, Math.max(merged.get(n - 1), r[1]));
      } else {
        merged.add(r[0]);
        merged.add(r[1]);
      }
    }
    return new CodePointSet(merged.stream().mapToInt(Integer::intValue).toArray());
  }

  /** Code points not in this set. */
  CodePointSet complement() {
    List<Integer> out = new ArrayList<>();
    int next = 0;
    for (int i = 0; i < ranges.length; i += 2) {
      if (ranges[i] > next) {
        out.add(next);
        out.add(ranges[i] - 1);
      }
      next = ranges[i + 1] + 1;
    }
    if (next <= MAX) {
      out.add(next);
      out.add(MAX);
    }
    return new CodePointSet(out.stream().mapToInt(Integer::intValue).toArray());
  }

  /** Code points in this set and not in {@code other}. */
  CodePointSet minus(CodePointSet other) {
    return complement().union(other).complement();
  }

  /** Code points in both sets. */
  CodePointSet intersect(CodePointSet other) {
    return complement().union(other.complement()).complement();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof CodePointSet other && Arrays.equals(ranges, other.ranges);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(ranges);
  }

  @Override
  public String toString() {
    return Gbnf.charClass(this);
  }
}
