package sphinxserve.runtime.chat;

import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

/** Hugging Face's {@code tojson} filter: Python's {@code json.dumps(x, ensure_ascii=False, indent=indent)}. */
final class PythonJson {
  /*
   * transformers replaces Jinja's own tojson (which HTML-escapes) with json.dumps(ensure_ascii=False), so a tool
   * schema renders as {"name": "f", "parameters": {...}}: ", " and ": " separators without indent, "," and
   * ": " plus newlines with one; non-ASCII raw; \\, \", \b, \f, \n, \r, \t and other controls as \\u00xx.
   * Floats follow Java's Double.toString, which matches Python's repr for the usual values (1.0, 0.5) but not
   * for exponents (Python 1e+16, Java 1.0E16): chat templates pass strings, ints and booleans here.
   * A template can build a cycle ({% set ns.a = ns %}) or a deep nest; Python's json.dumps refuses the first
   * ("Circular reference detected") and both would recurse here until the stack overflows, so the containers on
   * the current path are tracked by identity and the nesting is bounded by the render's depth limit.
   */

  private PythonJson() {}

  /** {@code json.dumps(value, ensure_ascii=False, indent=indent)}; {@code indent < 0} is Python's None. */
  static String dumps(Object value, int indent) {
    StringBuilder out = new StringBuilder();
    write(value, indent, 0, out, Collections.newSetFromMap(new IdentityHashMap<>()));
    return out.toString();
  }

  private static void write(Object value, int indent, int depth, StringBuilder out, Set<Object> path) {
    if (value instanceof Map<?, ?> || value instanceof Collection<?>) {
      if (!path.add(value)) {
        RenderBudget.chargeDepth(Integer.MAX_VALUE, "tojson: circular reference detected");
        throw new ChatTemplateException("tojson: circular reference detected");
      }
      RenderBudget.chargeDepth(depth + 1, "tojson: a value nested more than the depth limit");
      writeValue(value, indent, depth, out, path);
      path.remove(value);
    } else {
      writeValue(value, indent, depth, out, path);
    }
  }

  private static void writeValue(Object value, int indent, int depth, StringBuilder out, Set<Object> path) {
    switch (value) {
      case null -> out.append("null");
      case CharSequence s -> quote(s.toString(), out);
      case Boolean b -> out.append(b ? "true" : "false");
      case Double d when d.isNaN() -> out.append("NaN");
      case Double d when d.isInfinite() -> out.append(d > 0 ? "Infinity" : "-Infinity");
      case Float f -> writeValue(f.doubleValue(), indent, depth, out, path);
      case Number n -> out.append(n);
      case Map<?, ?> map -> {
        if (map.isEmpty()) {
          out.append("{}");
          return;
        }
        out.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> e : map.entrySet()) {
          separator(first, indent, depth + 1, out);
          first = false;
          quote(String.valueOf(e.getKey()), out);
          out.append(": ");
          write(e.getValue(), indent, depth + 1, out, path);
        }
        close(indent, depth, out);
        out.append('}');
      }
      case Collection<?> list -> {
        if (list.isEmpty()) {
          out.append("[]");
          return;
        }
        out.append('[');
        boolean first = true;
        for (Object item : list) {
          separator(first, indent, depth + 1, out);
          first = false;
          write(item, indent, depth + 1, out, path);
        }
        close(indent, depth, out);
        out.append(']');
      }
      default -> quote(value.toString(), out);
    }
  }

  private static void separator(boolean first, int indent, int depth, StringBuilder out) {
    RenderBudget.chargeChars(out.length() + (long) Math.max(indent, 0) * depth); // a huge indent, checked as it grows
    if (indent < 0) {
      out.append(first ? "" : ", ");
    } else {
      out.append(first ? "\n" : ",\n").repeat(' ', indent * depth);
    }
  }

  private static void close(int indent, int depth, StringBuilder out) {
    if (indent >= 0) {
      out.append('\n').repeat(' ', indent * depth);
    }
  }

  private static void quote(String s, StringBuilder out) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        case '\b' -> out.append("\\b");
        case '\f' -> out.append("\\f");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    out.append('"');
  }
}
