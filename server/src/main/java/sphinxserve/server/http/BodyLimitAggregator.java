package sphinxserve.server.http;

import io.grpc.Status;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;

/**
 * Netty's {@link HttpObjectAggregator} (a request's parts into one {@code FullHttpRequest}, at most {@code maxBytes};
 * {@code Expect: 100-continue} answered) with OpenAI's 413: a chunked body is refused as soon as it passes the limit,
 * in the queue's turn, and the connection closes after the answer. A declared {@code Content-Length} over the limit
 * never gets here: {@link HeadGuard} refuses it on the head.
 */
final class BodyLimitAggregator extends HttpObjectAggregator {

  private final int maxBytes;
  private final Runnable discardRest;

  /** @param discardRest drops what the connection sends after the refused body */
  BodyLimitAggregator(int maxBytes, Runnable discardRest) {
    super(maxBytes);
    this.maxBytes = maxBytes;
    this.discardRest = discardRest;
  }

  @Override
  protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
    discardRest.run();
    ctx.fireChannelRead(new ExchangeQueue.Refusal(HttpReplies.closing(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE,
        Status.INVALID_ARGUMENT.withDescription("body: more than " + maxBytes + " bytes (--max-message-bytes)"))));
  }
}
