package sphinxserve.server.http;

import io.netty.channel.Channel;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * At most {@code maxConnections} open HTTP connections ({@code --http-max-connections}): one more is closed as soon
 * as it is accepted, before a byte of it is read, so a flood of idle or half-open connections costs the node a
 * bounded number of sockets and buffers.
 */
final class ConnectionCap {

  private static final Logger LOG = LoggerFactory.getLogger(ConnectionCap.class);

  private final int maxConnections;
  private final AtomicInteger numOpen = new AtomicInteger();

  ConnectionCap(int maxConnections) {
    this.maxConnections = maxConnections;
  }

  /** Counts {@code channel} until it closes, or closes it at once when the cap is reached; whether it was admitted. */
  boolean admit(Channel channel) {
    if (numOpen.incrementAndGet() > maxConnections) {
      numOpen.decrementAndGet();
      LOG.debug("closing HTTP connection from {}: {} open (--http-max-connections)", channel.remoteAddress(), maxConnections);
      channel.close();
      return false;
    }
    channel.closeFuture().addListener(f -> numOpen.decrementAndGet());
    return true;
  }

  /** Connections open now. */
  int numOpen() {
    return numOpen.get();
  }
}
