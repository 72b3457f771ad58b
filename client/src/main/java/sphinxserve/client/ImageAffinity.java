package sphinxserve.client;

import io.grpc.ChannelCredentials;
import io.grpc.EquivalentAddressGroup;
import io.grpc.Grpc;
import io.grpc.LoadBalancerRegistry;
import io.grpc.ManagedChannel;
import io.grpc.NameResolver;
import io.grpc.NameResolverProvider;
import io.grpc.NameResolverRegistry;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Image-affinity routing: one channel over the whole fleet whose load-balancing policy is gRPC's ring hash on the
 * {@code x-image-digest} header, so every request about one image goes to the same node (the one that has encoded
 * and prefilled it) while the fleet is stable, and only the images of a node that leaves move.
 *
 * <p>How: the channel's default service config selects {@value #POLICY} with {@code requestHashHeader}
 * {@code x-image-digest} (gRFC A76). Its addresses come from a {@code dns:///} target (a Kubernetes headless
 * Service: one A record per ready pod) or from a list of {@code host:port} targets, served by a tiny static name
 * resolver ({@value #STATIC_SCHEME}) registered in a private registry. A request without the header (no image) is
 * hashed at random. Ring hash skips nodes in TRANSIENT_FAILURE, so a node that stops takes its images to the next
 * node on the ring; that is also why the client's circuit breaker is disabled in this mode (one breaker for the
 * whole fleet would take every node out for the fault of one).
 *
 * <p>grpc-java 1.83 honours {@code requestHashHeader} only when the feature flag {@value #REQUEST_HASH_FLAG} is
 * true (environment variable, else system property of that name); without it every pick fails with "RPC hash not
 * found". {@link #enableRequestHashHeader()} sets the system property, and refuses when the environment variable
 * says otherwise, because the environment wins in grpc-java.
 */
final class ImageAffinity {
  /** The load-balancing policy name in grpc-java (provided by {@code grpc-xds}). */
  static final String POLICY = "ring_hash_experimental";
  /** grpc-java's feature flag for {@code requestHashHeader}. */
  static final String REQUEST_HASH_FLAG = "GRPC_EXPERIMENTAL_RING_HASH_SET_REQUEST_HASH_KEY";
  /** Scheme of the static multi-address targets this class builds. */
  static final String STATIC_SCHEME = "sphinx-static";
  /** Ring entries: with a handful of nodes, 1024–4096 entries keep each node's share within a few percent. */
  static final long MIN_RING_SIZE = 1024;
  /** Upper bound of ring entries (grpc-java's own default cap is 4096). */
  static final long MAX_RING_SIZE = 4096;

  private ImageAffinity() {}

  /** The service config selecting ring hash on {@code x-image-digest}, for callers that build their own channel. */
  static Map<String, ?> serviceConfig() {
    Map<String, Object> ringHash = Map.of(
        "minRingSize", (double) MIN_RING_SIZE,
        "maxRingSize", (double) MAX_RING_SIZE,
        "requestHashHeader", ImageDigests.HEADER.name());
    return Map.of("loadBalancingConfig", List.of(Map.of(POLICY, ringHash)));
  }

  /**
   * Turns on grpc-java's {@code requestHashHeader} support for this JVM.
   *
   * @throws IllegalStateException when the environment variable turns it off, or ring hash is not on the classpath
   */
  static void enableRequestHashHeader() {
    if (LoadBalancerRegistry.getDefaultRegistry().getProvider(POLICY) == null) {
      throw new IllegalStateException("load-balancing policy " + POLICY + " is not available: add io.grpc:grpc-xds");
    }
    String env = System.getenv(REQUEST_HASH_FLAG);
    if (env != null && !env.isBlank()) {
      if (!Boolean.parseBoolean(env.trim().toLowerCase(Locale.ROOT))) {
        throw new IllegalStateException("image affinity needs " + REQUEST_HASH_FLAG + "=true, but the environment sets '"
            + env + "'");
      }
      return;
    }
    System.setProperty(REQUEST_HASH_FLAG, "true");
  }

  /**
   * One ring-hash channel over {@code targets}: a single target URI ({@code dns:///sphinx-headless:50051}) or
   * several {@code host:port} addresses.
   */
  static ManagedChannel channel(List<String> targets, ChannelCredentials credentials) {
    enableRequestHashHeader();
    if (targets.size() == 1 && targets.getFirst().contains(":///")) {
      return Grpc.newChannelBuilder(targets.getFirst(), credentials).defaultServiceConfig(serviceConfig())
          .userAgent("sphinx-client").build();
    }
    List<InetSocketAddress> addresses = new ArrayList<>();
    for (String t : targets) {
      addresses.add(parse(t));
    }
    NameResolverRegistry registry = new NameResolverRegistry();
    registry.register(new StaticProvider(addresses));
    return Grpc.newChannelBuilder(STATIC_SCHEME + ":///" + String.join(",", targets), credentials, registry)
        .defaultServiceConfig(serviceConfig()).userAgent("sphinx-client").build();
  }

  private static InetSocketAddress parse(String target) {
    int colon = target.lastIndexOf(':');
    if (colon <= 0 || target.contains("/")) {
      throw new IllegalArgumentException("image affinity over several targets needs host:port each, got '" + target
          + "' (for DNS use one dns:/// target)");
    }
    String host = target.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    try {
      return new InetSocketAddress(host, Integer.parseInt(target.substring(colon + 1)));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("bad port in target '" + target + "'", e);
    }
  }

  /** Resolves the static target to its fixed addresses, one endpoint each. */
  private static final class StaticProvider extends NameResolverProvider {
    private final List<InetSocketAddress> addresses;

    StaticProvider(List<InetSocketAddress> addresses) {
      this.addresses = List.copyOf(addresses);
    }

    @Override
    public NameResolver newNameResolver(URI targetUri, NameResolver.Args args) {
      if (!STATIC_SCHEME.equals(targetUri.getScheme())) {
        return null;
      }
      return new NameResolver() {
        @Override
        public String getServiceAuthority() {
          return addresses.getFirst().getHostString();
        }

        @Override
        public void start(Listener2 listener) {
          List<EquivalentAddressGroup> groups = addresses.stream().map(EquivalentAddressGroup::new).toList();
          listener.onResult(ResolutionResult.newBuilder().setAddresses(groups).build());
        }

        @Override
        public void shutdown() {}
      };
    }

    @Override
    public String getDefaultScheme() {
      return STATIC_SCHEME;
    }

    @Override
    protected boolean isAvailable() {
      return true;
    }

    @Override
    protected int priority() {
      return 5;
    }

    @Override
    public Collection<Class<? extends SocketAddress>> getProducedSocketAddressTypes() {
      return List.of(InetSocketAddress.class);
    }
  }
}
