package sphinxserve.server.http;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.util.ReferenceCountUtil;

/** An exchange whose whole response is known when the request arrives: a refusal, the model list, a page file. */
final class FixedExchange implements Exchange {

  private final Channel channel;
  private final FullHttpResponse response;
  private final boolean closeAfter;
  private final Runnable onEnd;
  private boolean started;

  /**
   * @param closeAfter close the connection once {@code response} is written (refusals: what follows is not read)
   * @param onEnd runs once the response was written (or dropped with the connection)
   */
  FixedExchange(Channel channel, FullHttpResponse response, boolean closeAfter, Runnable onEnd) {
    this.channel = channel;
    this.response = response;
    this.closeAfter = closeAfter;
    this.onEnd = onEnd;
  }

  @Override
  public void start() {
    started = true;
    var written = channel.writeAndFlush(response);
    if (closeAfter) written.addListener(ChannelFutureListener.CLOSE);
    onEnd.run();
  }

  @Override
  public void connectionClosed() {
    if (!started) ReferenceCountUtil.release(response); // once written, Netty owns it
  }
}
