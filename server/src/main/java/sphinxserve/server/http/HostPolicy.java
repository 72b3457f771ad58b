package sphinxserve.server.http;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Which browsers' requests the HTTP face takes: the {@code Host} allow-list against DNS rebinding and the
 * {@code Origin} check against cross-site requests.
 *
 * <p>DNS rebinding: a web page on {@code attacker.example} points its own name at 127.0.0.1 and then talks to a
 * local node as a same-origin page; the one thing it cannot change is the {@code Host} header, which names
 * {@code attacker.example}. So a node that does not authenticate answers only requests whose {@code Host} is one of
 * its own names: localhost, 127.0.0.0/8, [::1], the address it is bound to, the machine's name and interface
 * addresses when bound to every interface, and {@code --http-allowed-hosts} (a proxy's public name; {@code *} turns
 * the check off). With authentication the page would need a key it does not have, so any {@code Host} is accepted.
 *
 * <p>Cross-origin requests: a browser sends {@code Origin} with every cross-origin request, and with same-origin
 * POSTs; a request whose origin's {@code host:port} is not the {@code Host} it was sent to comes from another site
 * and is refused unless its origin is listed in {@code --http-cors-origins} (exact {@code scheme://host[:port]}, or
 * {@code *}), whose requests then get {@code Access-Control-Allow-Origin}. Netty's {@code CorsHandler} is not used:
 * it cannot tell a same-origin request (the chat page's own) from a foreign one, and answers refusals without
 * OpenAI's error body.
 */
final class HostPolicy {

  /** Whether a request's origin may call the API. */
  enum OriginVerdict {
    /** No {@code Origin}: not a browser's cross-origin request. */
    NONE,
    /** The page's origin is the node itself. */
    SAME,
    /** Another origin, listed in {@code --http-cors-origins}: answered with CORS headers. */
    ALLOWED,
    /** Another origin, not listed. */
    REFUSED
  }

  private static final Pattern LOOPBACK_V4 = Pattern.compile("127\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}");

  private final boolean checkHost;
  private final boolean anyHost;
  private final Set<String> hosts;
  private final boolean anyOrigin;
  private final Set<String> origins;

  private HostPolicy(boolean checkHost, Set<String> hosts, Set<String> origins) {
    this.checkHost = checkHost;
    this.anyHost = hosts.contains("*");
    this.hosts = hosts;
    this.anyOrigin = origins.contains("*");
    this.origins = origins;
  }

  /**
   * The policy of a node listening on {@code bound}.
   *
   * @param authenticates whether requests need credentials (then {@code Host} is not checked)
   * @param allowedHosts {@code --http-allowed-hosts}, lower case
   * @param corsOrigins {@code --http-cors-origins}, lower case
   */
  static HostPolicy of(InetSocketAddress bound, boolean authenticates, List<String> allowedHosts, List<String> corsOrigins) {
    Set<String> hosts = new HashSet<>(allowedHosts);
    hosts.add("localhost");
    hosts.add(literal(InetAddress.getLoopbackAddress()));
    try {
      hosts.add(literal(InetAddress.ofLiteral("::1")));
    } catch (IllegalArgumentException e) {
      throw new IllegalStateException(e);
    }
    InetAddress address = bound.getAddress();
    if (address != null && address.isAnyLocalAddress()) {
      try {
        InetAddress local = InetAddress.getLocalHost();
        hosts.add(local.getHostName().toLowerCase(Locale.ROOT));
        hosts.add(local.getCanonicalHostName().toLowerCase(Locale.ROOT));
      } catch (UnknownHostException e) {
        // no resolvable machine name: its interface addresses still count
      }
      try {
        for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
          for (InetAddress a : Collections.list(nic.getInetAddresses())) hosts.add(literal(a));
        }
      } catch (SocketException e) {
        // interfaces unreadable: only the loopback names and the flag's
      }
    } else if (address != null) {
      hosts.add(literal(address));
    }
    return new HostPolicy(!authenticates, Set.copyOf(hosts), Set.copyOf(corsOrigins));
  }

  /** Why a request with this {@code Host} is refused, or null when it is accepted. */
  String hostRefusal(String host) {
    if (!checkHost || anyHost) return null;
    String name = hostName(host);
    if (name.startsWith("[") && name.endsWith("]")) { // one spelling of an IPv6 address ([::1], not [0:0:0:0:0:0:0:1])
      try {
        name = literal(InetAddress.ofLiteral(name.substring(1, name.length() - 1)));
      } catch (IllegalArgumentException e) {
        return "Host '" + host + "' is not a valid address";
      }
    }
    if (hosts.contains(name) || LOOPBACK_V4.matcher(name).matches()) return null;
    return "Host '" + host + "' is not this node's name; a node without authentication answers only requests addressed to"
        + " its own names (localhost, its addresses), so that no web page can reach it by DNS rebinding. Add the name"
        + " with --http-allowed-hosts";
  }

  /** The verdict on a request with {@code origin} (may be null) sent to {@code host}. */
  OriginVerdict origin(String origin, String host) {
    if (origin == null) return OriginVerdict.NONE;
    String o = origin.trim().toLowerCase(Locale.ROOT);
    int scheme = o.indexOf("://");
    if (scheme > 0 && host != null && o.substring(scheme + 3).equals(host.trim().toLowerCase(Locale.ROOT))) return OriginVerdict.SAME;
    return anyOrigin || origins.contains(o) ? OriginVerdict.ALLOWED : OriginVerdict.REFUSED;
  }

  /** The host part of a {@code Host} header ({@code name}, {@code name:port}, {@code [v6]:port}), lower case. */
  static String hostName(String host) {
    String h = host.trim().toLowerCase(Locale.ROOT);
    if (h.startsWith("[")) {
      int end = h.indexOf(']');
      return end < 0 ? h : h.substring(0, end + 1);
    }
    int colon = h.lastIndexOf(':');
    h = colon >= 0 && h.indexOf(':') == colon ? h.substring(0, colon) : h;
    return h.endsWith(".") ? h.substring(0, h.length() - 1) : h;
  }

  /** An address as it appears in a {@code Host} header: IPv6 in brackets, without a zone. */
  private static String literal(InetAddress a) {
    String text = a.getHostAddress().toLowerCase(Locale.ROOT);
    if (a instanceof Inet6Address) {
      int zone = text.indexOf('%');
      return "[" + (zone >= 0 ? text.substring(0, zone) : text) + "]";
    }
    return text;
  }
}
