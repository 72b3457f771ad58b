package sphinxserve.runtime.chat;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/** Python {@code str} semantics that chat templates rely on and Java's {@code String} lacks or spells differently. */
final class PythonStrings {
  /*
   * Templates are Python: `content.strip()` strips what str.isspace() calls whitespace (which includes U+00A0
   * and U+0085, unlike Java's Character.isWhitespace), `s.split()` splits on whitespace runs while
   * `s.split(",")` is literal (Java's split takes a regex and drops trailing empty strings), and so on. Each
   * method here follows CPython's documented behaviour for the arguments templates pass.
   */

  /** The {@code str} methods {@link #invoke} implements. */
  static final Set<String> METHODS = Set.of(
      "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower", "title", "capitalize",
      "replace", "join", "find", "count");

  private PythonStrings() {}

  /**
   * {@code s.method(*args)} as Python computes it.
   *
   * @throws ChatTemplateException when the arguments do not fit the method
   */
  static Object invoke(String s, String method, Object[] args) {
    int n = args == null ? 0 : args.length;
    return switch (method) {
      case "strip" -> strip(s, charsArg(method, args, n), true, true);
      case "lstrip" -> strip(s, charsArg(method, args, n), true, false);
      case "rstrip" -> strip(s, charsArg(method, args, n), false, true);
      case "startswith" -> {
        requireArgs(method, n, 1, 1);
        yield anyMatch(args[0], method, s::startsWith);
      }
      case "endswith" -> {
        requireArgs(method, n, 1, 1);
        yield anyMatch(args[0], method, s::endsWith);
      }
      case "split" -> {
        requireArgs(method, n, 0, 2);
        String sep = n >= 1 && args[0] != null ? string(method, args[0]) : null;
        int maxSplit = n == 2 ? Math.toIntExact(number(method, args[1])) : -1;
        yield sep == null ? splitWhitespace(s, maxSplit) : split(s, sep, maxSplit);
      }
      case "upper" -> {
        requireArgs(method, n, 0, 0);
        yield s.toUpperCase(Locale.ROOT);
      }
      case "lower" -> {
        requireArgs(method, n, 0, 0);
        yield s.toLowerCase(Locale.ROOT);
      }
      case "title" -> {
        requireArgs(method, n, 0, 0);
        yield title(s);
      }
      case "capitalize" -> {
        requireArgs(method, n, 0, 0);
        yield s.isEmpty() ? s : s.substring(0, s.offsetByCodePoints(0, 1)).toUpperCase(Locale.ROOT)
            + s.substring(s.offsetByCodePoints(0, 1)).toLowerCase(Locale.ROOT);
      }
      case "replace" -> {
        requireArgs(method, n, 2, 3);
        long count = n == 3 ? number(method, args[2]) : -1;
        yield replace(s, string(method, args[0]), string(method, args[1]), count);
      }
      case "join" -> {
        requireArgs(method, n, 1, 1);
        if (!(args[0] instanceof Collection<?> items)) {
          throw new ChatTemplateException("str.join() takes a list, got " + typeName(args[0]));
        }
        List<String> parts = new ArrayList<>(items.size());
        long length = 0;
        for (Object item : items) {
          parts.add(string(method, item));
          length += parts.getLast().length() + s.length();
        }
        RenderBudget.chargeChars(length); // before building it: a long separator times a long list
        yield String.join(s, parts);
      }
      case "find" -> {
        requireArgs(method, n, 1, 1);
        yield (long) s.indexOf(string(method, args[0]));
      }
      case "count" -> {
        requireArgs(method, n, 1, 1);
        yield (long) count(s, string(method, args[0]));
      }
      default -> throw new IllegalStateException("not a str method here: " + method);
    };
  }

  /** Python's {@code str.isspace()} for one character: Unicode whitespace, no-break spaces included. */
  static boolean isSpace(int c) {
    return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
  }

  /** {@code s.strip(chars)} (or lstrip/rstrip); {@code chars == null} strips whitespace. */
  static String strip(String s, String chars, boolean left, boolean right) {
    int start = 0;
    int end = s.length();
    while (left && start < end && stripped(s.codePointAt(start), chars)) {
      start += Character.charCount(s.codePointAt(start));
    }
    while (right && end > start && stripped(s.codePointBefore(end), chars)) {
      end -= Character.charCount(s.codePointBefore(end));
    }
    return s.substring(start, end);
  }

  private static boolean stripped(int c, String chars) {
    return chars == null ? isSpace(c) : chars.indexOf(c) >= 0;
  }

  private static List<String> splitWhitespace(String s, int maxSplit) {
    List<String> out = new ArrayList<>();
    int i = 0;
    int len = s.length();
    while (true) {
      while (i < len && isSpace(s.codePointAt(i))) {
        i += Character.charCount(s.codePointAt(i));
      }
      if (i >= len) {
        return out;
      }
      if (maxSplit >= 0 && out.size() == maxSplit) {
        out.add(strip(s.substring(i), null, false, true)); // the rest, trailing whitespace removed
        return out;
      }
      int start = i;
      while (i < len && !isSpace(s.codePointAt(i))) {
        i += Character.charCount(s.codePointAt(i));
      }
      out.add(s.substring(start, i));
    }
  }

  private static List<String> split(String s, String sep, int maxSplit) {
    if (sep.isEmpty()) {
      throw new ChatTemplateException("str.split(): empty separator");
    }
    List<String> out = new ArrayList<>();
    int start = 0;
    int at;
    while ((maxSplit < 0 || out.size() < maxSplit) && (at = s.indexOf(sep, start)) >= 0) {
      out.add(s.substring(start, at));
      start = at + sep.length();
    }
    out.add(s.substring(start));
    return out;
  }

  /** Python's {@code str.title()}: a cased character after an uncased one starts a word. */
  private static String title(String s) {
    StringBuilder out = new StringBuilder(s.length());
    boolean previousCased = false;
    for (int i = 0; i < s.length(); ) {
      int c = s.codePointAt(i);
      i += Character.charCount(c);
      out.appendCodePoint(previousCased ? Character.toLowerCase(c) : Character.toTitleCase(c));
      previousCased = Character.isUpperCase(c) || Character.isLowerCase(c) || Character.isTitleCase(c);
    }
    return out.toString();
  }

  /** Python's {@code str.replace(old, new[, count])}; a negative count replaces every occurrence. */
  private static String replace(String s, String target, String replacement, long count) {
    // Checked before building: "a".repeat(10^4).replace("a", same) would be 10^8 characters.
    long occurrences = target.isEmpty() ? s.length() + 1L : count(s, target);
    long replaced = count < 0 ? occurrences : Math.min(count, occurrences);
    RenderBudget.chargeChars(s.length() + replaced * Math.max(0, replacement.length() - target.length()));
    if (count < 0) {
      return s.replace(target, replacement);
    }
    if (target.isEmpty()) {
      // Python inserts before each character (and at the end), up to count times.
      StringBuilder out = new StringBuilder();
      long done = 0;
      int i = 0;
      for (; i < s.length() && done < count; done++) {
        int width = Character.charCount(s.codePointAt(i));
        out.append(replacement).append(s, i, i + width);
        i += width;
      }
      if (i == s.length() && done < count) {
        out.append(replacement);
      }
      return out.append(s, i, s.length()).toString();
    }
    StringBuilder out = new StringBuilder();
    int start = 0;
    for (long done = 0; done < count; done++) {
      int at = s.indexOf(target, start);
      if (at < 0) {
        break;
      }
      out.append(s, start, at).append(replacement);
      start = at + target.length();
    }
    return out.append(s, start, s.length()).toString();
  }

  private static int count(String s, String sub) {
    if (sub.isEmpty()) {
      return s.codePointCount(0, s.length()) + 1;
    }
    int count = 0;
    for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
      count++;
    }
    return count;
  }

  private static boolean anyMatch(Object arg, String method, java.util.function.Predicate<String> test) {
    if (arg instanceof Collection<?> options) { // Python accepts a tuple of prefixes
      for (Object option : options) {
        if (test.test(string(method, option))) {
          return true;
        }
      }
      return false;
    }
    return test.test(string(method, arg));
  }

  private static String charsArg(String method, Object[] args, int n) {
    requireArgs(method, n, 0, 1);
    return n == 1 && args[0] != null ? string(method, args[0]) : null;
  }

  private static void requireArgs(String method, int n, int min, int max) {
    if (n < min || n > max) {
      throw new ChatTemplateException("str." + method + "() takes " + (min == max ? "" + min : min + " to " + max)
          + " arguments, got " + n);
    }
  }

  private static String string(String method, Object arg) {
    if (arg instanceof String s) {
      return s;
    }
    throw new ChatTemplateException("str." + method + "(): expected a string, got " + typeName(arg));
  }

  private static long number(String method, Object arg) {
    if (arg instanceof Number number && number.doubleValue() == number.longValue()) {
      return number.longValue();
    }
    throw new ChatTemplateException("str." + method + "(): expected an integer, got " + typeName(arg));
  }

  private static String typeName(Object arg) {
    return arg == null ? "none" : arg.getClass().getSimpleName();
  }
}
