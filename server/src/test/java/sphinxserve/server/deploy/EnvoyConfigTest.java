package sphinxserve.server.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.TypeRegistry;
import com.google.protobuf.util.JsonFormat;
import io.envoyproxy.envoy.config.bootstrap.v3.Bootstrap;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.route.v3.RouteAction;
import io.envoyproxy.envoy.extensions.filters.http.router.v3.Router;
import io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager;
import io.envoyproxy.envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate;
import io.envoyproxy.envoy.extensions.upstreams.http.v3.HttpProtocolOptions;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * deploy/envoy/envoy.yaml parsed into Envoy's own v3 API protos ({@code io.envoyproxy.controlplane:api}): YAML →
 * JSON → {@link JsonFormat} into {@link Bootstrap}, which rejects unknown fields and unknown {@code @type}s just as
 * Envoy does. (Envoy's protoc-gen-validate constraints are not checked.)
 */
final class EnvoyConfigTest {

  private static final Path ENVOY = DeployFiles.root().resolve("envoy/envoy.yaml");

  /** Every type the config packs into an {@code Any}. */
  private static final TypeRegistry TYPES = TypeRegistry.newBuilder()
      .add(HttpConnectionManager.getDescriptor())
      .add(Router.getDescriptor())
      .add(PreviousHostsPredicate.getDescriptor())
      .add(HttpProtocolOptions.getDescriptor())
      .build();

  @Test
  void bootstrap_parsesIntoEnvoysApi() throws Exception {
    Bootstrap bootstrap = parse(DeployFiles.JSON.writeValueAsString(DeployFiles.document(ENVOY)));
    assertEquals(1, bootstrap.getStaticResources().getListenersCount());
    HttpConnectionManager hcm = bootstrap.getStaticResources().getListeners(0).getFilterChains(0).getFilters(0)
        .getTypedConfig().unpack(HttpConnectionManager.class);
    RouteAction route = hcm.getRouteConfig().getVirtualHosts(0).getRoutes(0).getRoute();
    assertEquals("x-image-digest", route.getHashPolicy(0).getHeader().getHeaderName());
    assertTrue(route.getRetryPolicy().getRetryOn().contains("unavailable"));

    Cluster nodes = bootstrap.getStaticResources().getClusters(0);
    assertEquals(route.getCluster(), nodes.getName());
    assertEquals(Cluster.LbPolicy.RING_HASH, nodes.getLbPolicy());
    assertTrue(nodes.getCommonLbConfig().getConsistentHashingLbConfig().getHashBalanceFactor().getValue() > 100,
        "bounded load");
    HttpProtocolOptions upstream = nodes.getTypedExtensionProtocolOptionsOrThrow(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions").unpack(HttpProtocolOptions.class);
    assertTrue(upstream.getExplicitHttpConfig().hasHttp2ProtocolOptions(), "HTTP/2 upstreams");
    assertEquals("sphinx.v1.Sphinx", nodes.getHealthChecks(0).getGrpcHealthCheck().getServiceName());
    assertTrue(nodes.hasOutlierDetection());
    assertEquals(50051, nodes.getLoadAssignment().getEndpoints(0).getLbEndpoints(0).getEndpoint().getAddress()
        .getSocketAddress().getPortValue());
  }

  @Test
  void bootstrap_misspeltField_fails() throws Exception {
    String json = DeployFiles.JSON.writeValueAsString(DeployFiles.document(ENVOY))
        .replace("\"hash_balance_factor\"", "\"hash_balanse_factor\"");
    InvalidProtocolBufferException e = assertThrows(InvalidProtocolBufferException.class, () -> parse(json));
    assertTrue(e.getMessage().contains("hash_balanse_factor"), e.getMessage());
  }

  private static Bootstrap parse(String json) throws InvalidProtocolBufferException {
    Bootstrap.Builder builder = Bootstrap.newBuilder();
    JsonFormat.parser().usingTypeRegistry(TYPES).merge(json, builder);
    return builder.build();
  }
}
