/**
 * Who may call and how much: bearer credentials ({@code Authenticator}: API keys from the tenants file, {@code
 * Tenants}; JWTs, {@code JwtAuthenticator}), the caller's {@code Tenant} and its limits ({@code TenantLimits},
 * enforced per tenant across both protocols by {@code TenantLimiters}), and the TLS files with reload ({@code
 * TlsFiles}).
 */
package sphinxserve.server.auth;
