package sphinxserve.server.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.grpc.Status;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;

/** Whole HTTP responses with a JSON body: answers and OpenAI-shaped errors. */
final class HttpReplies {

  private HttpReplies() {}

  /** {@code body} as a whole response with {@code status}. */
  static FullHttpResponse json(HttpResponseStatus status, ObjectNode body) {
    byte[] bytes = bytes(body);
    FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(bytes));
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON).setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
    return response;
  }

  /** OpenAI's error body for {@code error}, with the HTTP status {@code status} (not necessarily the usual mapping). */
  static FullHttpResponse error(HttpResponseStatus status, Status error) {
    return json(status, OpenAiResponses.error(error));
  }

  /** OpenAI's error body for {@code error}, with the HTTP status it maps to. */
  static FullHttpResponse error(Status error) {
    return error(OpenAiResponses.httpStatus(error.getCode()), error);
  }

  /** A refusal that ends the connection: the client's next bytes are not read. */
  static FullHttpResponse closing(HttpResponseStatus status, Status error) {
    FullHttpResponse response = error(status, error);
    response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
    return response;
  }

  /** {@code node} as compact JSON bytes. */
  static byte[] bytes(ObjectNode node) {
    try {
      return OpenAiResponses.JSON.writeValueAsBytes(node);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** {@code node} as one Server-Sent Event ({@code data: ...} and a blank line). */
  static byte[] event(ObjectNode node) {
    return ("data: " + new String(bytes(node), StandardCharsets.UTF_8) + "\n\n").getBytes(StandardCharsets.UTF_8);
  }
}
