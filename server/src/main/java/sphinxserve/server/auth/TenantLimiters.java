package sphinxserve.server.auth;

import java.util.concurrent.ConcurrentHashMap;

/**
 * Every tenant's {@link TenantLimiter}, shared by both protocols: a tenant's request rate, token rate and stream
 * count are one budget whether it calls over gRPC or HTTP.
 */
public final class TenantLimiters {

  private final ConcurrentHashMap<String, TenantLimiter> limiters = new ConcurrentHashMap<>();

  /** {@code tenant}'s limiter, or null when it has no limits. */
  public TenantLimiter of(Tenant tenant) {
    if (tenant.limits().equals(TenantLimits.NONE)) return null;
    return limiters.computeIfAbsent(tenant.name(), n -> new TenantLimiter(tenant));
  }
}
