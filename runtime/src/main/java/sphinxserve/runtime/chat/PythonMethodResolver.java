package sphinxserve.runtime.chat;

import java.beans.FeatureDescriptor;
import java.util.Iterator;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Resolves Python {@code str} method calls ({@code content.strip()}, {@code role.title()}, ...) before jinjava's
 * bean resolver would look for a Java method of that name (see {@link PythonStrings}). Resolves nothing else.
 */
final class PythonMethodResolver extends ELResolver {

  @Override
  public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
    if (base instanceof String s && method instanceof String name && PythonStrings.METHODS.contains(name)) {
      Object result = PythonStrings.invoke(s, name, params);
      context.setPropertyResolved(true);
      return result;
    }
    return null;
  }

  @Override
  public Object getValue(ELContext context, Object base, Object property) {
    return null;
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
