package sphinxserve.server.e2e;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP relay on loopback in front of a node, which a test can {@link #cut} like a failing network: every relayed
 * connection is reset (RST) and new ones are refused, while the node itself keeps running. Threads: one accepts,
 * two pump each connection.
 */
final class TcpRelay implements AutoCloseable {

  private final ServerSocket listener;
  private final int targetPort;
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();

  /** Relays connections on a free loopback port to {@code targetPort}. */
  TcpRelay(int targetPort) throws IOException {
    this.targetPort = targetPort;
    this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread.ofPlatform().daemon().name("relay-accept").start(this::accept);
  }

  /** The port clients connect to. */
  int port() {
    return listener.getLocalPort();
  }

  private void accept() {
    try {
      while (true) {
        Socket client = listener.accept();
        Socket upstream = new Socket(InetAddress.getLoopbackAddress(), targetPort);
        sockets.add(client);
        sockets.add(upstream);
        pump(client, upstream);
        pump(upstream, client);
      }
    } catch (IOException e) {
      // the listener was closed by cut()
    }
  }

  private static void pump(Socket from, Socket to) {
    Thread.ofPlatform().daemon().name("relay-pump").start(() -> {
      try {
        from.getInputStream().transferTo(to.getOutputStream());
      } catch (IOException e) {
        // one side went away; close both below
      } finally {
        closeQuietly(from);
        closeQuietly(to);
      }
    });
  }

  /** Resets every relayed connection and refuses new ones. */
  void cut() {
    closeQuietly(listener);
    for (Socket s : sockets) {
      try {
        s.setSoLinger(true, 0); // close with RST, as a dropped connection
      } catch (IOException e) {
        // already closed
      }
      closeQuietly(s);
    }
  }

  @Override
  public void close() {
    cut();
  }

  private static void closeQuietly(AutoCloseable c) {
    try {
      c.close();
    } catch (Exception e) {
      // nothing to do
    }
  }
}
