package sphinxserve.server.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import sphinxserve.server.auth.Tenant;
import sphinxserve.server.auth.TenantLimits;
import sphinxserve.server.auth.Tenants;

/** The tenants file: parsing, hashed keys, and every refusal naming the file and the property. */
final class TenantsTest {

  @TempDir
  Path dir;

  private Path file(String text) throws IOException {
    return Files.writeString(dir.resolve("tenants.properties"), text);
  }

  @Test
  void load_fullTenant_readsKeysMethodsAndLimits() throws IOException {
    Tenants tenants = Tenants.load(file("""
        acme.key-sha256 = %s, %s
        acme.methods = Generate, GetModelInfo
        acme.requests-per-second = 2.5
        acme.tokens-per-second = 100
        acme.max-streams = 3
        acme.max-tokens = 64
        acme.max-image-bytes = 2m
        other.key-sha256 = %s
        """.formatted(Tenants.sha256("k1"), Tenants.sha256("k2"), Tenants.sha256("k3"))));
    Tenant acme = tenants.byKey("k2");
    assertEquals("acme", acme.name());
    assertEquals(acme, tenants.byKey("k1"));
    assertEquals(Set.of("Generate", "GetModelInfo"), acme.methods());
    assertEquals(new TenantLimits(2.5, 100, 3, 64, 2L << 20), acme.limits());
    assertTrue(tenants.byKey("k3").allows("PutImage"), "methods default to all");
    assertEquals(TenantLimits.NONE, tenants.byKey("k3").limits());
    assertNull(tenants.byKey(Tenants.sha256("k1")), "a stored hash is not a key");
  }

  @Test
  void sha256_isLowerCaseHexOfUtf8() {
    assertEquals("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", Tenants.sha256("hello"));
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "acme.key-sha256 = abc | acme.key-sha256: must be SHA-256 hashes",
      "acme.methods = Generate, Delete | acme.methods: unknown method 'Delete'",
      "acme.max-streams = -1 | acme.max-streams: must be a number >= 0",
      "acme.max-image-bytes = lots | acme.max-image-bytes: must be a size in bytes",
      "acme.colour = blue | acme.colour: unknown attribute 'colour'",
      "no-dot = 1 | no-dot: expected <tenant>.<attribute>",
      "a b.methods = * | expected <tenant>.<attribute>",
  })
  void load_badProperty_failsNamingIt(String line, String expected) throws IOException {
    Path f = file(line + "\n");
    var e = assertThrows(IllegalArgumentException.class, () -> Tenants.load(f));
    assertTrue(e.getMessage().startsWith("tenants: " + f + ": ") && e.getMessage().contains(expected), e.getMessage());
  }

  @Test
  void load_sameKeyForTwoTenants_fails() throws IOException {
    String hash = Tenants.sha256("shared");
    Path f = file("a.key-sha256=" + hash + "\nb.key-sha256=" + hash + "\n");
    var e = assertThrows(IllegalArgumentException.class, () -> Tenants.load(f));
    assertTrue(e.getMessage().contains("the same key is also a's"), e.getMessage());
  }
}
