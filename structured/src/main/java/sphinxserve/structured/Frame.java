package sphinxserve.structured;

/**
 * One stack of the pushdown matcher as an immutable linked list: the position of the next element to match and
 * the continuation to resume when the current alternative ends ({@code null}: the end of the root rule).
 * Stacks share their tails, so a matcher state is cheap to keep and to compare. Equality is structural
 * (positions along the chain), with an identity shortcut for shared tails.
 */
final class Frame {
  final int pos;
  final Frame parent;
  final int depth;
  private final int hash;

  Frame(int pos, Frame parent) {
    this.pos = pos;
    this.parent = parent;
    this.depth = parent == null ? 1 : parent.depth + 1;
    this.hash = 31 * (parent == null ? 17 : parent.hash) + pos;
  }

  @Override
  public int hashCode() {
    return hash;
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof Frame other)) return false;
    Frame a = this;
    Frame b = other;
    while (a != b) {
      if (a == null || b == null || a.hash != b.hash || a.pos != b.pos || a.depth != b.depth) return false;
      a = a.parent;
      b = b.parent;
    }
    return true;
  }

  /** A total order consistent with {@link #equals}: positions compared from the top down. */
  static int compare(Frame a, Frame b) {
    while (a != b) {
      if (a == null) return -1;
      if (b == null) return 1;
      if (a.pos != b.pos) return Integer.compare(a.pos, b.pos);
      if (a.depth != b.depth) return Integer.compare(a.depth, b.depth);
      a = a.parent;
      b = b.parent;
    }
    return 0;
  }
}
