package sphinxserve.structured;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The rules of one GBNF grammar being generated: unique names, bodies in definition order, and the byte bound
 * of each rule so that references carry it.
 *
 * <p>Two name spaces that cannot meet: names derived from a schema ({@link #reserve}) always start with
 * {@code root} or {@code ref} (the translators' hints do), fixed helper rules ({@link #shared}) never do. Every
 * name carries the set's prefix (when it has one), so that grammars generated apart can live in one file.
 */
final class RuleSet {
  private final Map<String, String> bodies = new LinkedHashMap<>();
  private final Map<String, Long> maxBytes = new HashMap<>();
  /** Put before every name, with a dash; empty for none. */
  private final String prefix;

  /** Rules named as they are. */
  RuleSet() {
    this("");
  }

  /** Rules whose names all start with {@code prefix + "-"} ({@code prefix} empty: none). */
  RuleSet(String prefix) {
    if (!prefix.isEmpty() && !prefix.matches("[a-z][a-z0-9]*(-[a-z0-9]+)*")) {
      throw new IllegalArgumentException("rule prefix must be lowercase letters, digits and inner dashes: '" + prefix + "'");
    }
    this.prefix = prefix.isEmpty() ? "" : prefix + "-";
  }

  /** The name the rule {@code name} of the unprefixed scheme has here. */
  String named(String name) {
    return prefix + name;
  }

  /** A fresh rule name based on {@code hint}, reserved so that later names differ. */
  String reserve(String hint) {
    String base = Gbnf.ruleName(hint);
    if (!base.startsWith("root") && !base.startsWith("ref")) {
      throw new IllegalArgumentException("schema-derived rule names start with root or ref-: " + hint);
    }
    base = prefix + base;
    String name = base;
    for (int i = 2; bodies.containsKey(name); i++) {
      name = base + "-" + i;
    }
    bodies.put(name, null);
    return name;
  }

  /** Gives reserved rule {@code name} its body; returns a reference to it. */
  Fragment define(String name, Fragment body) {
    bodies.put(name, body.text());
    maxBytes.put(name, body.maxBytes());
    return new Fragment(name, body.maxBytes());
  }

  /** A new rule named after {@code hint} with {@code body}; returns a reference to it. */
  Fragment add(String hint, Fragment body) {
    return define(reserve(hint), body);
  }

  /**
   * A reference to the shared rule {@code name}, defined by {@code body} the first time it is asked for.
   * For fixed helper rules ({@code ws}, {@code json-string}, ...), whose names are never derived from a schema.
   */
  Fragment shared(String name, java.util.function.Supplier<Fragment> body) {
    if (name.startsWith("root") || name.startsWith("ref")) {
      throw new IllegalArgumentException("shared rule names must not look schema-derived: " + name);
    }
    name = prefix + name;
    if (maxBytes.containsKey(name)) {
      return new Fragment(name, maxBytes.get(name));
    }
    if (bodies.containsKey(name)) {
      return new Fragment(name, Fragment.UNBOUNDED); // being defined: a recursive use
    }
    bodies.put(name, null);
    return define(name, body.get());
  }

  /** The byte bound of a defined rule, or {@link Fragment#UNBOUNDED} while it is still being defined. */
  long maxBytesOf(String name) {
    return maxBytes.getOrDefault(name, Fragment.UNBOUNDED);
  }

  /** Whether a rule of that name is reserved or defined. */
  boolean has(String name) {
    return bodies.containsKey(name);
  }

  /** The grammar text: the start rule ({@code root} with the prefix) first, then the others in definition order. */
  String render() {
    String start = named("root");
    StringBuilder out = new StringBuilder();
    bodies.forEach((name, body) -> {
      if (body == null) {
        throw new IllegalStateException("rule " + name + " reserved but never defined");
      }
      if (name.equals(start)) {
        out.append(name).append(" ::= ").append(body).append('\n');
      }
    });
    bodies.forEach((name, body) -> {
      if (!name.equals(start)) {
        out.append(name).append(" ::= ").append(body).append('\n');
      }
    });
    return out.toString();
  }
}
