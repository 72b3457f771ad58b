package sphinxserve.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * An HTTP/1.1 client on a plain socket, for what well-behaved clients never do: pipelining, half-sent requests,
 * heads without their bodies, readers that stop reading, abrupt closes. It parses exactly what the node sends
 * (status line, headers, Content-Length or chunked bodies) so a test sees the bytes as they arrive.
 */
final class RawHttp implements AutoCloseable {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** One response as read off the wire. */
  record Response(int status, Map<String, String> headers, String body) {

    /** The header {@code name} (lower case), or null. */
    String header(String name) {
      return headers.get(name.toLowerCase(Locale.ROOT));
    }

    /** The body as JSON. */
    JsonNode json() {
      try {
        return JSON.readTree(body);
      } catch (IOException e) {
        throw new AssertionError("not JSON (" + status + "): " + body, e);
      }
    }

    /** The {@code data:} payloads of a Server-Sent Events body, in order. */
    List<String> events() {
      return body.lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
    }
  }

  private final Socket socket;
  private final InputStream in;
  private final OutputStream out;

  private RawHttp(Socket socket) throws IOException {
    this.socket = socket;
    this.in = new BufferedInputStream(socket.getInputStream());
    this.out = socket.getOutputStream();
    socket.setSoTimeout(15_000);
  }

  /** Connects to {@code 127.0.0.1:port}. */
  static RawHttp connect(int port) throws IOException {
    return connect(port, 0);
  }

  /** Connects with a receive buffer of {@code receiveBufferBytes} (0: the system's), set before connecting. */
  static RawHttp connect(int port, int receiveBufferBytes) throws IOException {
    Socket socket = new Socket();
    if (receiveBufferBytes > 0) socket.setReceiveBufferSize(receiveBufferBytes);
    socket.connect(new InetSocketAddress("127.0.0.1", port), 5_000);
    return new RawHttp(socket);
  }

  /** A whole POST request with a JSON body, as bytes to send (several may be sent in one write). */
  static String post(String path, String host, String json, String... headerLines) {
    byte[] body = json.getBytes(StandardCharsets.UTF_8);
    StringBuilder sb = new StringBuilder("POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\n");
    boolean typed = false;
    for (String h : headerLines) {
      sb.append(h).append("\r\n");
      typed |= h.toLowerCase(Locale.ROOT).startsWith("content-type:");
    }
    if (!typed) sb.append("Content-Type: application/json\r\n");
    return sb.append("Content-Length: ").append(body.length).append("\r\n\r\n").append(json).toString();
  }

  /** A GET request. */
  static String get(String path, String host, String... headerLines) {
    StringBuilder sb = new StringBuilder("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n");
    for (String h : headerLines) sb.append(h).append("\r\n");
    return sb.append("\r\n").toString();
  }

  /** Writes {@code text} (UTF-8) and flushes. */
  RawHttp send(String text) throws IOException {
    out.write(text.getBytes(StandardCharsets.UTF_8));
    out.flush();
    return this;
  }

  /** Reads one whole response (its body by Content-Length, chunked, or until the close). */
  Response read() throws IOException {
    Response head = readHead();
    return new Response(head.status(), head.headers(), readBody(head));
  }

  /** Reads a response's status line and headers only. */
  Response readHead() throws IOException {
    String status = line();
    if (status == null) throw new EOFException("the connection closed before a response");
    if (!status.startsWith("HTTP/1.")) throw new IOException("not a status line: " + status);
    Map<String, String> headers = new LinkedHashMap<>();
    for (String h = line(); h != null && !h.isEmpty(); h = line()) {
      int colon = h.indexOf(':');
      headers.put(h.substring(0, colon).trim().toLowerCase(Locale.ROOT), h.substring(colon + 1).trim());
    }
    return new Response(Integer.parseInt(status.substring(9, 12)), headers, "");
  }

  /** The body of the response whose head was {@code head}. */
  String readBody(Response head) throws IOException {
    if ("chunked".equalsIgnoreCase(head.header("transfer-encoding"))) {
      StringBuilder body = new StringBuilder();
      for (String chunk = readChunk(); chunk != null; chunk = readChunk()) body.append(chunk);
      return body.toString();
    }
    String length = head.header("content-length");
    if (length == null) return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    return new String(in.readNBytes(Integer.parseInt(length)), StandardCharsets.UTF_8);
  }

  /** The next chunk of a chunked body; null after the last (empty) chunk and its trailer. */
  String readChunk() throws IOException {
    String size = line();
    if (size == null) throw new EOFException("the connection closed inside a chunked body");
    int n = Integer.parseInt(size.split(";")[0].trim(), 16);
    if (n == 0) {
      while (true) {
        String trailer = line();
        if (trailer == null || trailer.isEmpty()) return null;
      }
    }
    byte[] bytes = in.readNBytes(n);
    line(); // the CRLF after the data
    return new String(bytes, StandardCharsets.UTF_8);
  }

  /**
   * Whether the node closed the connection within {@code timeout}: reads (and discards) until the end of the
   * stream or a reset; false if the connection is still open when the time is up.
   */
  boolean closedWithin(Duration timeout) throws IOException {
    long end = System.nanoTime() + timeout.toNanos();
    try {
      while (true) {
        long left = Math.max(1, (end - System.nanoTime()) / 1_000_000);
        if (System.nanoTime() >= end) return false;
        socket.setSoTimeout((int) Math.min(left, Integer.MAX_VALUE));
        if (in.read() < 0) return true;
      }
    } catch (SocketTimeoutException e) {
      return false;
    } catch (SocketException e) { // reset by the node
      return true;
    } finally {
      socket.setSoTimeout(15_000);
    }
  }

  /** Sets how long a read may wait. */
  RawHttp timeout(Duration timeout) throws IOException {
    socket.setSoTimeout((int) timeout.toMillis());
    return this;
  }

  private String line() throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    int b;
    while ((b = in.read()) >= 0) {
      if (b == '\n') break;
      bytes.write(b);
    }
    if (b < 0 && bytes.size() == 0) return null;
    String line = bytes.toString(StandardCharsets.UTF_8);
    return line.endsWith("\r") ? line.substring(0, line.length() - 1) : line;
  }

  /** Closes the socket at once (the client going away). */
  @Override
  public void close() throws IOException {
    socket.close();
  }
}
