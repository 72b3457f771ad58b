package sphinxserve.structured;

import java.util.List;

/**
 * A GBNF expression under construction, with the most UTF-8 bytes any string it matches can have.
 *
 * <p>{@link #UNBOUNDED} stands for "no bound" (a {@code *}, a recursive rule). Bounds add up through
 * sequences, take the maximum over alternatives and multiply through bounded repetitions, saturating at
 * {@link #UNBOUNDED}; that is how {@link JsonSchemaGrammar#maxBytes} is computed.
 */
record Fragment(String text, long maxBytes) {
  /** Marker for an expression whose matches have no length bound. */
  static final long UNBOUNDED = -1;

  /** The empty string. */
  static final Fragment EMPTY = new Fragment("\"\"", 0);

  /** A literal string. */
  static Fragment literal(String value) {
    return new Fragment(Gbnf.literal(value), Gbnf.utf8Length(value));
  }

  /** Expressions one after another. */
  static Fragment seq(Fragment... parts) {
    return seq(List.of(parts));
  }

  /** Expressions one after another. */
  static Fragment seq(List<Fragment> parts) {
    StringBuilder text = new StringBuilder();
    long max = 0;
    for (Fragment part : parts) {
      if (part.equals(EMPTY)) {
        continue;
      }
      if (!text.isEmpty()) {
        text.append(' ');
      }
      text.append(part.text);
      max = add(max, part.maxBytes);
    }
    return text.isEmpty() ? EMPTY : new Fragment(text.toString(), max);
  }

  /** One of several expressions; parenthesised. */
  static Fragment alt(List<Fragment> choices) {
    if (choices.isEmpty()) {
      throw new IllegalArgumentException("no alternatives");
    }
    if (choices.size() == 1) {
      return choices.getFirst();
    }
    StringBuilder text = new StringBuilder("(");
    long max = 0;
    for (int i = 0; i < choices.size(); i++) {
      if (i > 0) {
        text.append(" | ");
      }
      text.append(choices.get(i).text);
      max = maxOf(max, choices.get(i).maxBytes);
    }
    return new Fragment(text.append(')').toString(), max);
  }

  /** {@code this} between {@code min} and {@code max} times ({@code max} {@link #UNBOUNDED} for no limit). */
  Fragment repeat(long min, long max) {
    if (max == 0) {
      return EMPTY;
    }
    if (min == 1 && max == 1) {
      return this;
    }
    String group = "(" + text + ")";
    String suffix;
    if (max == UNBOUNDED) {
      suffix = min == 0 ? "*" : min == 1 ? "+" : "{" + min + ",}";
    } else if (min == 0 && max == 1) {
      suffix = "?";
    } else if (min == max) {
      suffix = "{" + min + "}";
    } else {
      suffix = "{" + min + "," + max + "}";
    }
    long bytes = max == UNBOUNDED || maxBytes == UNBOUNDED ? (maxBytes == 0 ? 0 : UNBOUNDED) : multiply(maxBytes, max);
    return new Fragment(group + suffix, bytes);
  }

  /** {@code this} or nothing. */
  Fragment optional() {
    return repeat(0, 1);
  }

  /** Sum of two bounds. */
  static long add(long a, long b) {
    if (a == UNBOUNDED || b == UNBOUNDED) {
      return UNBOUNDED;
    }
    long sum = a + b;
    return sum < 0 ? UNBOUNDED : sum;
  }

  /** Larger of two bounds. */
  static long maxOf(long a, long b) {
    return a == UNBOUNDED || b == UNBOUNDED ? UNBOUNDED : Math.max(a, b);
  }

  private static long multiply(long a, long n) {
    try {
      return Math.multiplyExact(a, n);
    } catch (ArithmeticException e) {
      return UNBOUNDED;
    }
  }
}
