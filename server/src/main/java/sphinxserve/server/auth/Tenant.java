package sphinxserve.server.auth;

import io.grpc.Context;
import java.util.Set;

/**
 * A client of the node, as authentication established it: its name, the methods it may call and its limits.
 *
 * <p>Isolation: unless the node shares caches ({@code --share-caches}), the tenant's name salts the prefix-cache
 * block hashes ({@link #tenantSalt}) and scopes the image cache ({@link #cacheScope}), so one tenant's prompts and
 * images never produce hits, or digest lookups, for another. {@link #ANONYMOUS}, the only tenant of a node
 * without authentication, uses the shared (unsalted) caches: there is no one to isolate it from.
 *
 * @param name the tenant's name from the tenants file (letters, digits, {@code -} and {@code _})
 * @param methods the {@code sphinx.v1.Sphinx} methods it may call (bare names: {@code Generate}), or {@code *}
 * @param limits its rate, stream and size limits
 */
public record Tenant(String name, Set<String> methods, TenantLimits limits) {

  /** Where the authentication interceptor puts the call's tenant. */
  public static final Context.Key<Tenant> KEY = Context.key("sphinx-tenant");

  /** Allows every method. */
  static final String ALL_METHODS = "*";

  /** The tenant of every call when the node does not authenticate. */
  public static final Tenant ANONYMOUS = new Tenant("anonymous", Set.of(ALL_METHODS), TenantLimits.NONE);

  /** The current call's tenant; {@link #ANONYMOUS} outside an authenticated call. */
  public static Tenant current() {
    Tenant t = KEY.get();
    return t != null ? t : ANONYMOUS;
  }

  /** Whether the tenant may call {@code method} (bare name, e.g. {@code PutImage}). */
  public boolean allows(String method) {
    return methods.contains(ALL_METHODS) || methods.contains(method);
  }

  /** The prefix-cache salt: null (shared) for {@link #ANONYMOUS} or when {@code shareCaches}, else the name. */
  public String tenantSalt(boolean shareCaches) {
    return shareCaches || this == ANONYMOUS ? null : "tenant:" + name;
  }

  /** The image-cache scope: {@code ""} (shared) for {@link #ANONYMOUS} or when {@code shareCaches}, else the name. */
  public String cacheScope(boolean shareCaches) {
    return shareCaches || this == ANONYMOUS ? "" : name;
  }
}
