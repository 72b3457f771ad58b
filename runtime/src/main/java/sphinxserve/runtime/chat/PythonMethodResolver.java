package sphinxserve.runtime.chat;

import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.objects.SafeString;
import com.hubspot.jinjava.util.ForLoop;
import java.beans.FeatureDescriptor;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The only way a chat template calls a method or reads an attribute of something that is not a dict: Python's
 * {@code str} methods ({@link PythonStrings}), the read-only {@code dict} methods ({@code get}, {@code items},
 * {@code keys}, {@code values}) and {@code list} methods ({@code index}, {@code count}) that transformers'
 * ImmutableSandboxedEnvironment allows. Every other method call fails as Python's AttributeError would, and an
 * attribute of a string, number or other Java object is undefined, so no Java method is ever reachable
 * ({@code ''.getClass()}, {@code content.bytes}, {@code messages.add(...)}).
 */
final class PythonMethodResolver extends ELResolver {
  /*
   * jinjava's own resolvers (JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY, behind this one) call any
   * public Java method but a short deny list (getClass, hashCode, ...): content.getBytes(), content.length(),
   * [].add(x), and bean properties (content.bytes, content.empty). This resolver sits first and resolves every
   * invoke itself, and every attribute read on a base that is not a dict, list or jinjava's loop object, so the
   * ones behind it only ever read dict keys, list items and loop.index / loop.first / ... .
   */

  private static final Set<String> DICT_METHODS = Set.of("get", "items", "keys", "values");
  private static final Set<String> LIST_METHODS = Set.of("index", "count");

  @Override
  public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
    if (base == null || !(method instanceof String name)) {
      return null; // a function call (range(), namespace(), a macro): not a method
    }
    if (base instanceof Filter && name.equals("filter") || base instanceof ExpTest && name.startsWith("evaluate")
        || base instanceof ForLoop && name.equals("cycle")) {
      return null; // `x | f`, `x is t` run as filter:f.filter(x), exptest:t.evaluate(x); Jinja's loop.cycle(...)
    }
    RenderBudget.chargeSteps(1);
    Object result;
    if (base instanceof String || base instanceof SafeString) {
      if (!PythonStrings.METHODS.contains(name)) {
        throw noMethod("str", name);
      }
      result = PythonStrings.invoke(base.toString(), name, params);
    } else if (base instanceof Map<?, ?> map && DICT_METHODS.contains(name)) {
      result = dictMethod(map, name, params == null ? new Object[0] : params);
    } else if (base instanceof List<?> list && LIST_METHODS.contains(name)) {
      result = listMethod(list, name, params == null ? new Object[0] : params);
    } else {
      throw noMethod(typeName(base), name);
    }
    context.setPropertyResolved(true);
    return result;
  }

  @Override
  public Object getValue(ELContext context, Object base, Object property) {
    if (base == null || base instanceof Map || base instanceof ForLoop
        || base instanceof List && (property instanceof Number || property instanceof String s && isIndex(s))) {
      return null; // variables, dict keys, list items, loop.index: jinjava's resolvers
    }
    context.setPropertyResolved(true); // an attribute of anything else is undefined, as in Jinja
    return null;
  }

  private static boolean isIndex(String s) {
    return !s.isEmpty() && s.length() < 11 && s.chars().allMatch(c -> c >= '0' && c <= '9' || c == '-');
  }

  private static Object dictMethod(Map<?, ?> map, String name, Object[] args) {
    if (!name.equals("get")) {
      RenderBudget.chargeSteps(map.size()); // items/keys/values copy the dict: one step per entry
    }
    return switch (name) {
      case "get" -> {
        requireArgs("dict", name, args, 1, 2);
        Object value = map.get(args[0]);
        yield value == null && !map.containsKey(args[0]) && args.length == 2 ? args[1] : value;
      }
      case "items" -> {
        requireArgs("dict", name, args, 0, 0);
        List<Map.Entry<?, ?>> items = new ArrayList<>(map.size());
        for (Map.Entry<?, ?> e : map.entrySet()) {
          items.add(new AbstractMap.SimpleImmutableEntry<>(e.getKey(), e.getValue()));
        }
        yield items;
      }
      case "keys" -> {
        requireArgs("dict", name, args, 0, 0);
        yield new ArrayList<>(map.keySet());
      }
      case "values" -> {
        requireArgs("dict", name, args, 0, 0);
        yield new ArrayList<>(map.values());
      }
      default -> throw new IllegalStateException(name);
    };
  }

  private static Object listMethod(List<?> list, String name, Object[] args) {
    requireArgs("list", name, args, 1, 1);
    RenderBudget.chargeSteps(list.size()); // count and index scan the list: one step per item, as a loop would
    if (name.equals("count")) {
      return list.stream().filter(item -> Objects.equals(item, args[0])).count();
    }
    int at = list.indexOf(args[0]);
    if (at < 0) {
      throw new ChatTemplateException("list.index(x): x not in list");
    }
    return (long) at;
  }

  private static void requireArgs(String type, String name, Object[] args, int min, int max) {
    if (args.length < min || args.length > max) {
      throw new ChatTemplateException(type + "." + name + "() takes " + (min == max ? "" + min : min + " to " + max)
          + " arguments, got " + args.length);
    }
  }

  private static ChatTemplateException noMethod(String type, String name) {
    return new ChatTemplateException("'" + type + "' object has no attribute '" + name + "'");
  }

  private static String typeName(Object base) {
    return switch (base) {
      case Map<?, ?> m -> "dict";
      case List<?> l -> "list";
      case Number n -> n instanceof Double || n instanceof Float ? "float" : "int";
      case Boolean b -> "bool";
      default -> "object";
    };
  }

  @Override
  public Class<?> getType(ELContext context, Object base, Object property) {
    return null;
  }

  @Override
  public void setValue(ELContext context, Object base, Object property, Object value) {}

  @Override
  public boolean isReadOnly(ELContext context, Object base, Object property) {
    return true;
  }

  @Override
  public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
    return null;
  }

  @Override
  public Class<?> getCommonPropertyType(ELContext context, Object base) {
    return null;
  }
}
