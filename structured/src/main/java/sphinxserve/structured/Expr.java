package sphinxserve.structured;

import java.util.List;

/**
 * The grammar IR: a rule's right-hand side over Unicode code points. GBNF, regular expressions and choices all
 * parse to it; {@link ByteProgram} lowers it to bytes. Immutable.
 */
sealed interface Expr {

  /** The empty sequence (matches the empty string). */
  Expr EMPTY = new Seq(List.of());

  /** A literal string (its UTF-8 bytes, in order). */
  record Literal(String text) implements Expr {}

  /**
   * One code point from a set, as sorted, disjoint, non-adjacent inclusive ranges {@code [lo0, hi0, lo1, hi1,
   * ...]} within U+0000..U+10FFFF, surrogates excluded (they have no UTF-8 encoding).
   */
  record CharSet(int[] ranges) implements Expr {}

  /** The items one after another. */
  record Seq(List<Expr> items) implements Expr {}

  /** Any one of the options. */
  record Alt(List<Expr> options) implements Expr {}

  /** {@code body} repeated {@code min} to {@code max} times; {@code max == UNBOUNDED} for no upper bound. */
  record Repeat(Expr body, int min, int max) implements Expr {
    /** {@link #max} of {@code *} and {@code +}. */
    static final int UNBOUNDED = -1;
  }

  /** A reference to the rule {@code name}, written at {@code line}:{@code column} of the source. */
  record Ref(String name, int line, int column) implements Expr {}
}
