package sphinxserve.runtime.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.objects.SafeString;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a chat template may use: Jinja's built-in tags, filters and tests as transformers' sandboxed environment
 * has them, the globals transformers adds, and nothing of jinjava's own library that reads files, the network or
 * the clock, parses data into values, or renders a string as a template. Every filter and {@code range()} is
 * charged to the render's {@link RenderBudget}.
 */
final class TemplateSandbox {
  /*
   * jinjava ships far more than Jinja: fromjson/fromyaml (parse a string into objects), render (run a string as a
   * template), include/import/from/extends (load other templates through a resource locator), today/unixtimestamp/
   * datetimeformat (clock), ipaddr, md5, regex_replace and so on. The allow lists below are Jinja's built-ins that
   * jinjava has under the same name; everything else jinjava registers is disabled (JinjavaConfig.withDisabled),
   * so a template that names it fails as one using an unknown filter fails in Python.
   */

  /** Jinja's built-in filters (jinja2/filters.py FILTERS), those jinjava has (trim and tojson are JinjaChatTemplate's). */
  static final Set<String> FILTERS = Set.of(
      "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
      "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
      "last", "length", "list", "lower", "map", "max", "min", "pprint", "reject", "rejectattr", "replace",
      "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title",
      "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr");

  /** Jinja's statements transformers enables (loopcontrols included); no template loading. */
  static final Set<String> TAGS = Set.of(
      "for", "endfor", "if", "elif", "else", "endif", "set", "endset", "macro", "endmacro", "call", "endcall",
      "break", "continue", "raw", "endraw", "autoescape", "endautoescape");

  /**
   * Jinja's built-in tests (jinja2/tests.py TESTS), those jinjava has: jinjava's own (containingall, ...) scan
   * one collection per item of another in a single step the budget never sees.
   */
  static final Set<String> EXP_TESTS = Set.of(
      "odd", "even", "divisibleby", "defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
      "number", "string", "mapping", "sequence", "iterable", "callable", "sameas", "escaped", "lower", "upper", "in",
      "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", ">=", "ge", "<", "lt", "lessthan", "<=", "le",
      "truthy"); // jinjava's own, what select/reject/selectattr without a test apply

  /** Globals: Jinja's range and namespace, transformers' raise_exception and strftime_now. */
  static final Set<String> FUNCTIONS = Set.of(":range", ":namespace", ":raise_exception", ":strftime_now");

  /** Filters whose numeric arguments size what they build (a width, a count of slices). */
  private static final Set<String> SIZING_FILTERS = Set.of("center", "indent", "wordwrap", "truncate", "batch", "slice");

  /**
   * A width or precision in a Java format specifier ({@code %10000000s}, {@code %.9999999f}, {@code %1$99999s}):
   * an optional argument index, then flags, then the two numbers.
   */
  private static final Pattern FORMAT_WIDTH = Pattern.compile("%(?:\\d+\\$)?[-#0 +,(<]*(\\d*)(?:\\.(\\d+))?");

  private TemplateSandbox() {}

  /** {@code base} with the disabled tags, filters and functions of a default jinjava, and the budget hooks. */
  static JinjavaConfig.Builder configure(JinjavaConfig.Builder base, ChatTemplateLimits limits) {
    Context defaults = new Jinjava().getGlobalContext();
    Map<Context.Library, Set<String>> disabled = new EnumMap<>(Context.Library.class);
    disabled.put(Context.Library.TAG, outside(defaults.getAllTags().stream().map(Tag::getName).toList(), TAGS));
    disabled.put(Context.Library.FILTER, outside(defaults.getAllFilters().stream().map(Filter::getName).toList(), FILTERS));
    disabled.put(Context.Library.EXP_TEST,
        outside(defaults.getAllExpTests().stream().map(ExpTest::getName).toList(), EXP_TESTS));
    disabled.put(Context.Library.FUNCTION,
        outside(defaults.getAllFunctions().stream().map(ELFunctionDefinition::getName).toList(), FUNCTIONS));
    int maxCollection = (int) Math.min(Integer.MAX_VALUE, limits.maxIterations());
    return base
        .withDisabled(disabled)
        // Message content is data: jinjava would otherwise render an expression's output again as a template.
        .withNestedInterpretationEnabled(false)
        .withMaxOutputSize(limits.maxOutputChars())
        .withMaxStringLength(limits.maxOutputChars())
        .withMaxListSize(maxCollection)
        .withMaxMapSize(maxCollection)
        .withRangeLimit(maxCollection) // jinjava's range is replaced; this bounds its other uses
        .withMaxRenderDepth(limits.maxDepth())
        .withEnableRecursiveMacroCalls(true) // Jinja allows recursion; the depth is bounded instead
        .withMaxMacroRecursionDepth(limits.maxDepth())
        .withProcessors(com.hubspot.jinjava.el.JinjavaProcessors.newBuilder()
            .withNodePreProcessor((node, interpreter) -> RenderBudget.chargeSteps(1))
            .build());
  }

  /** Registers {@code range} and wraps every allowed filter of {@code jinjava} in a budget check. */
  static void install(Jinjava jinjava) {
    Context context = jinjava.getGlobalContext();
    context.registerFunction(new ELFunctionDefinition("", "range", TemplateSandbox.class, "range", Object.class, Object[].class));
    List<Filter> allowed = new ArrayList<>();
    for (Filter filter : context.getAllFilters()) {
      if (FILTERS.contains(filter.getName())) {
        allowed.add(filter);
      }
    }
    for (Filter filter : allowed) {
      context.registerFilter(new BudgetedFilter(filter));
    }
  }

  private static Set<String> outside(Collection<String> names, Set<String> allowed) {
    Set<String> out = new HashSet<>(names);
    out.removeAll(allowed);
    return out;
  }

  /** Python's {@code range(stop)} / {@code range(start, stop[, step])}, its length charged as steps first. */
  public static List<Integer> range(Object first, Object... rest) {
    long start = 0;
    long stop;
    long step = 1;
    if (rest == null || rest.length == 0) {
      stop = integer(first);
    } else {
      start = integer(first);
      stop = integer(rest[0]);
      if (rest.length > 1) {
        step = integer(rest[1]);
      }
      if (rest.length > 2) {
        throw new ChatTemplateException("range expected at most 3 arguments, got " + (rest.length + 1));
      }
    }
    if (step == 0) {
      throw new ChatTemplateException("range() arg 3 must not be zero");
    }
    long length = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0) : (start > stop ? (start - stop - step - 1) / -step : 0);
    RenderBudget.chargeSteps(length);
    List<Integer> items = new ArrayList<>((int) Math.min(length, 1 << 16));
    for (long i = 0, v = start; i < length; i++, v += step) {
      items.add(Math.toIntExact(v));
    }
    return items;
  }

  private static long integer(Object value) {
    if (value instanceof Number n && n.doubleValue() == n.longValue()) {
      if (n.longValue() != (int) n.longValue()) {
        throw new ChatTemplateException("range(): " + n + " is out of range");
      }
      return n.longValue();
    }
    if (value instanceof String s) {
      try {
        return Integer.parseInt(s.trim());
      } catch (NumberFormatException e) {
        // fall through
      }
    }
    throw new ChatTemplateException("range(): expected an integer, got " + (value == null ? "none" : "'" + value + "'"));
  }

  /** A filter charged one step per call, its sizing arguments and its result checked against the budget. */
  private static final class BudgetedFilter implements Filter {
    private final Filter delegate;

    BudgetedFilter(Filter delegate) {
      this.delegate = delegate;
    }

    @Override
    public String getName() {
      return delegate.getName();
    }

    @Override
    public boolean preserveSafeString() {
      return delegate.preserveSafeString();
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
      before(var, args, Map.of());
      return after(delegate.filter(var, interpreter, args));
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      before(var, args, kwargs);
      return after(delegate.filter(var, interpreter, args, kwargs));
    }

    @Override
    public Object filter(SafeString var, JinjavaInterpreter interpreter, String... args) {
      before(var, args, Map.of());
      return after(delegate.filter(var, interpreter, args));
    }

    private void before(Object var, Object[] args, Map<String, Object> kwargs) {
      RenderBudget budget = RenderBudget.current();
      if (budget == null) {
        return;
      }
      budget.steps(1);
      String name = delegate.getName();
      if (SIZING_FILTERS.contains(name)) {
        long width = 0;
        for (Object arg : args == null ? new Object[0] : args) {
          width = Math.max(width, number(arg));
        }
        for (Object arg : kwargs.values()) {
          width = Math.max(width, number(arg));
        }
        long lines = var instanceof CharSequence s ? s.chars().filter(c -> c == '\n').count() + 1 : 1;
        // indent puts `width` spaces on every line; the others build at most `width` characters or pieces
        budget.chars(name.equals("indent") && width > 0 ? (lines > Long.MAX_VALUE / width ? Long.MAX_VALUE : width * lines) : width);
      } else if (name.equals("format") && var != null) {
        Matcher m = FORMAT_WIDTH.matcher(var.toString());
        while (m.find()) {
          budget.chars(number(m.group(1)));
          budget.chars(number(m.group(2)));
        }
      } else if (name.equals("join") && var instanceof Collection<?> items) {
        long length = 0;
        String separator = args != null && args.length > 0 && args[0] != null ? args[0].toString() : "";
        for (Object item : items) {
          length += String.valueOf(item).length() + separator.length();
        }
        budget.chars(length);
      } else if (name.equals("replace") && var != null && args != null && args.length >= 2) {
        String s = var.toString();
        String target = String.valueOf(args[0]);
        long occurrences = target.isEmpty() ? s.length() + 1L : s.split(Pattern.quote(target), -1).length - 1L;
        budget.chars(s.length() + occurrences * Math.max(0, String.valueOf(args[1]).length() - target.length()));
      }
    }

    private static Object after(Object result) {
      RenderBudget budget = RenderBudget.current();
      if (budget != null) {
        if (result instanceof CharSequence s) {
          budget.chars(s.length());
        } else if (result instanceof Collection<?> c) {
          budget.steps(0);
          if (c.size() > budget.limits().maxIterations()) {
            budget.steps(c.size());
          }
        }
      }
      return result;
    }

    private static long number(Object arg) {
      if (arg instanceof Number n) {
        return n.longValue();
      }
      if (arg instanceof String s && !s.isEmpty() && s.chars().allMatch(Character::isDigit)) {
        return s.length() < 19 ? Long.parseLong(s) : Long.MAX_VALUE; // too long for a long is too wide
      }
      return 0;
    }
  }
}
