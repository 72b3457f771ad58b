package sphinxserve.server.auth;

import io.grpc.netty.GrpcSslContexts;
import io.grpc.util.AdvancedTlsX509KeyManager;
import io.grpc.util.AdvancedTlsX509TrustManager;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sphinxserve.server.config.NodeConfig;

/**
 * The node's TLS material, served from PEM files and reloaded when they change, without a restart.
 *
 * <p>How: the Netty {@link SslContext} is built once over grpc-java's {@link AdvancedTlsX509KeyManager} (and
 * {@link AdvancedTlsX509TrustManager} for client certificates), which the JDK's TLS engine asks on every
 * handshake; replacing their credentials changes what new connections get, while open connections keep the
 * certificate they were made with. Every {@code --tls-reload-seconds} a timer compares the files' modification
 * times and sizes with the last load and, when any changed, loads them again. A file caught half-written (a
 * key that does not match its certificate, a truncated PEM) is logged and the previous material kept; the next
 * tick retries. (grpc-java's own periodic file reload needs both key and certificate times to change and did
 * not pick up a replaced pair in our tests, hence this small timer.)
 */
public final class TlsFiles implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(TlsFiles.class);

  private final NodeConfig config;
  private final AdvancedTlsX509KeyManager keys = new AdvancedTlsX509KeyManager();
  private final AdvancedTlsX509TrustManager trust;
  private final SslContext context;
  /** The same keys for the HTTP/1.1 API (gRPC's context negotiates h2 by ALPN and refuses clients without it). */
  private final SslContext httpContext;
  private final ScheduledExecutorService timer;
  private List<Object> loaded; // the stamps of the files last loaded; timer thread after construction

  /** Loads the files {@code config} names; a bad one throws {@link IllegalArgumentException} naming its option. */
  public TlsFiles(NodeConfig config) {
    this.config = config;
    try {
      keys.updateIdentityCredentials(config.tlsCert().toFile(), config.tlsKey().toFile());
    } catch (IOException | GeneralSecurityException | RuntimeException e) {
      throw new IllegalArgumentException("tls-cert, tls-key: cannot load " + config.tlsCert() + " with " + config.tlsKey()
          + " (PEM certificate chain and PKCS#8 private key expected): " + e.getMessage(), e);
    }
    SslContextBuilder builder = GrpcSslContexts.configure(SslContextBuilder.forServer(keys));
    SslContextBuilder http = SslContextBuilder.forServer(keys);
    if (config.mutualTls()) {
      try {
        trust = AdvancedTlsX509TrustManager.newBuilder()
            .setVerification(AdvancedTlsX509TrustManager.Verification.CERTIFICATE_ONLY_VERIFICATION).build();
        trust.updateTrustCredentials(config.tlsClientCa().toFile());
      } catch (IOException | GeneralSecurityException | RuntimeException e) {
        throw new IllegalArgumentException("tls-client-ca: cannot load " + config.tlsClientCa() + " (PEM CA certificates expected): " + e.getMessage(), e);
      }
      builder.trustManager(trust).clientAuth(ClientAuth.REQUIRE);
      http.trustManager(trust).clientAuth(ClientAuth.REQUIRE);
    } else {
      trust = null;
    }
    try {
      context = builder.build();
      httpContext = http.build();
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException("tls-cert, tls-key: cannot build the TLS context: " + e.getMessage(), e);
    }
    loaded = stamps();
    if (config.tlsReloadSeconds() > 0) {
      timer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().name("sphinx-tls-reload").daemon().unstarted(r));
      timer.scheduleWithFixedDelay(this::reloadIfChanged, config.tlsReloadSeconds(), config.tlsReloadSeconds(), TimeUnit.SECONDS);
    } else {
      timer = null;
    }
  }

  /** The server's TLS context. */
  public SslContext context() {
    return context;
  }

  /** The TLS context of the HTTP/1.1 API: same keys and client CA, reloaded together. */
  public SslContext httpContext() {
    return httpContext;
  }

  private List<Object> stamps() {
    return config.mutualTls() ? List.of(stamp(config.tlsCert()), stamp(config.tlsKey()), stamp(config.tlsClientCa()))
        : List.of(stamp(config.tlsCert()), stamp(config.tlsKey()));
  }

  private static Object stamp(Path file) {
    try {
      return List.of(Files.getLastModifiedTime(file), Files.size(file));
    } catch (IOException e) {
      return "missing";
    }
  }

  private void reloadIfChanged() {
    List<Object> now = stamps();
    if (now.equals(loaded)) return;
    try {
      keys.updateIdentityCredentials(config.tlsCert().toFile(), config.tlsKey().toFile());
      if (trust != null) trust.updateTrustCredentials(config.tlsClientCa().toFile());
      loaded = now;
      LOG.info("TLS files reloaded: {}", config.tlsCert());
    } catch (IOException | GeneralSecurityException | RuntimeException e) {
      LOG.warn("TLS files changed but cannot be loaded; keeping the previous ones: {}", e.toString());
    }
  }

  /** Stops watching the files. */
  @Override
  public void close() {
    if (timer != null) timer.shutdownNow();
  }
}
