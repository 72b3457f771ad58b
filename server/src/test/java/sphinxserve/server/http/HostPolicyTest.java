package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The Host allow-list and the Origin check, on the spellings browsers and proxies send. */
class HostPolicyTest {

  private static final InetSocketAddress LOOPBACK = new InetSocketAddress(InetAddress.getLoopbackAddress(), 8080);

  @Test
  void hostRefusal_loopbackNamesAndAddressesInAnySpelling_acceptedOthersRefused() {
    HostPolicy p = HostPolicy.of(LOOPBACK, false, List.of(), List.of());
    for (String own : List.of("localhost", "LOCALHOST:8080", "localhost.", "127.0.0.1", "127.1.2.3:99", "[::1]", "[0:0:0:0:0:0:0:1]:8080")) {
      assertNull(p.hostRefusal(own), own);
    }
    for (String foreign : List.of("attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example", "localhost.attacker.example",
        "10.0.0.1", "[fd00::1]", "[not-an-address]")) {
      assertNotNull(p.hostRefusal(foreign), foreign);
    }
  }

  @Test
  void hostRefusal_listedNamesAndStar_andNoCheckWithAuthentication() {
    assertNull(HostPolicy.of(LOOPBACK, false, List.of("api.example"), List.of()).hostRefusal("API.example:443"));
    assertNull(HostPolicy.of(LOOPBACK, false, List.of("*"), List.of()).hostRefusal("anything.example"));
    assertNull(HostPolicy.of(LOOPBACK, true, List.of(), List.of()).hostRefusal("attacker.example"), "a key is needed anyway");
  }

  @Test
  void hostRefusal_everyInterface_acceptsTheMachinesAddresses() throws Exception {
    HostPolicy p = HostPolicy.of(new InetSocketAddress(8080), false, List.of(), List.of());
    for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
      for (InetAddress a : Collections.list(nic.getInetAddresses())) {
        if (a instanceof java.net.Inet4Address) assertNull(p.hostRefusal(a.getHostAddress() + ":8080"), a.toString());
      }
    }
    assertNotNull(p.hostRefusal("attacker.example"));
  }

  @Test
  void origin_sameListedStarOrForeign() {
    HostPolicy p = HostPolicy.of(LOOPBACK, false, List.of(), List.of("https://app.example"));
    assertEquals(HostPolicy.OriginVerdict.NONE, p.origin(null, "localhost:8080"));
    assertEquals(HostPolicy.OriginVerdict.SAME, p.origin("http://localhost:8080", "localhost:8080"));
    assertEquals(HostPolicy.OriginVerdict.SAME, p.origin("http://LOCALHOST:8080", "localhost:8080"));
    assertEquals(HostPolicy.OriginVerdict.ALLOWED, p.origin("https://APP.example", "localhost:8080"));
    assertEquals(HostPolicy.OriginVerdict.REFUSED, p.origin("https://app.example:8443", "localhost:8080"), "origins match exactly");
    assertEquals(HostPolicy.OriginVerdict.REFUSED, p.origin("http://localhost:9999", "localhost:8080"), "another port is another origin");
    assertEquals(HostPolicy.OriginVerdict.REFUSED, p.origin("null", "localhost:8080"));
    assertEquals(HostPolicy.OriginVerdict.ALLOWED, HostPolicy.of(LOOPBACK, false, List.of(), List.of("*")).origin("null", "localhost"));
  }

  @Test
  void isJson_onlyApplicationJsonInUtf8() {
    assertTrue(HeadGuard.isJson("application/json"));
    assertTrue(HeadGuard.isJson("Application/JSON; charset=\"UTF-8\""));
    assertFalse(HeadGuard.isJson("application/json; charset=latin-1"));
    assertFalse(HeadGuard.isJson("text/plain"));
    assertFalse(HeadGuard.isJson("application/jsonp"));
    assertFalse(HeadGuard.isJson(null));
  }
}
