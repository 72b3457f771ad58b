package sphinxserve.server.http;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * HTTP/1.1 flow control for one connection, the last handler of its pipeline: one request at a time, pipelined
 * requests held in order, reading kept on while a request runs, and the connection's idle/read timeout.
 *
 * <p>How: every whole request ({@link FullHttpRequest} from the aggregator, or a {@link Refusal} from the head checks)
 * becomes an {@link Exchange} in a FIFO; the head of the FIFO is active, the others wait, and the next starts on the
 * event loop after the active one's last write was issued (Netty runs writes from other threads as event-loop tasks
 * in order, so responses never interleave). Reading stays on while a request runs, so a client's close is seen at
 * once ({@code channelInactive} aborts the active exchange: its engine request ends within a step) and pipelined
 * requests queue up; past {@link #MAX_QUEUED} waiting requests, or their bodies past the body limit, reading pauses ({@code autoRead} off) until the FIFO
 * drains. Writability changes go to the active exchange (back-pressure of a streamed answer).
 *
 * <p>The idle/read timeout: while the connection has nothing to answer, the client must deliver a whole request
 * within {@code idleTimeout} of the last answer (or of connecting), or the connection is closed. This one timer closes
 * idle keep-alive connections, half-sent requests and slow-loris heads (a byte at a time) alike, and never a
 * connection waiting for its own long answer. Netty's {@code IdleStateHandler} is not used: any byte resets it, so a
 * slow-loris client is never idle. The other direction: a client that reads nothing of an answer waiting for it (the
 * channel unwritable) for the same time is closed, so a finished answer cannot hold a connection and its buffers.
 */
final class ExchangeQueue extends ChannelInboundHandlerAdapter {

  private static final Logger LOG = LoggerFactory.getLogger(ExchangeQueue.class);

  /** Requests waiting behind the active one beyond which reading pauses (a pipelining client's share of memory). */
  static final int MAX_QUEUED = 16;

  /** Makes the exchange of a whole, admitted request. */
  @FunctionalInterface
  interface Exchanges {
    /** The exchange answering {@code request}; {@code onEnd} must run once when it has ended. */
    Exchange create(Channel channel, Admitted head, FullHttpRequest request, Runnable onEnd);
  }

  /** A refusal decided before the request's body: answered in turn, then the connection closes. */
  record Refusal(io.netty.handler.codec.http.FullHttpResponse response) {}

  private final Duration idleTimeout;
  private final long maxQueuedBytes;
  private final Exchanges exchanges;
  private final ArrayDeque<Exchange> waiting = new ArrayDeque<>();
  private long queuedBytes;
  private ChannelHandlerContext ctx;
  private Exchange active;
  private Admitted expected;
  private boolean closed;
  private ScheduledFuture<?> idleTimer;
  /** Runs while the connection is unwritable: a client that reads none of its answer for the idle timeout is closed. */
  private ScheduledFuture<?> readStallTimer;

  /**
   * @param idleTimeout {@code --http-idle-timeout}
   * @param maxQueuedBytes request bodies waiting behind the active one beyond which reading pauses (the body limit: a
   *     pipelining client holds at most about one more body than a client that waits for its answers)
   */
  ExchangeQueue(Duration idleTimeout, long maxQueuedBytes, Exchanges exchanges) {
    this.idleTimeout = idleTimeout;
    this.maxQueuedBytes = maxQueuedBytes;
    this.exchanges = exchanges;
  }

  /** The head checks admitted the request whose body the aggregator is now reading. */
  void expect(Admitted head) {
    expected = head;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    this.ctx = ctx;
  }

  @Override
  public void channelActive(ChannelHandlerContext ctx) {
    armIdleTimer();
    ctx.fireChannelActive();
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (msg instanceof FullHttpRequest request && expected != null) {
      Admitted head = expected;
      expected = null;
      Exchange[] self = new Exchange[1];
      self[0] = exchanges.create(ctx.channel(), head, request, () -> ended(self[0]));
      enqueue(self[0]);
    } else if (msg instanceof Refusal refusal) {
      Exchange[] self = new Exchange[1];
      self[0] = new FixedExchange(ctx.channel(), refusal.response(), true, () -> ended(self[0]));
      enqueue(self[0]);
    } else {
      ReferenceCountUtil.release(msg); // nothing else reaches here; never leak a buffer that does
    }
  }

  private void enqueue(Exchange exchange) {
    if (closed) {
      exchange.connectionClosed();
      return;
    }
    cancelIdleTimer();
    waiting.add(exchange);
    queuedBytes += exchange.heldBytes();
    if ((waiting.size() > MAX_QUEUED || queuedBytes > maxQueuedBytes) && ctx.channel().config().isAutoRead()) {
      ctx.channel().config().setAutoRead(false);
    }
    if (active == null) next();
  }

  /** Starts the next exchange, or arms the idle timer when there is none; resumes reading once the FIFO has room. */
  private void next() {
    active = waiting.poll();
    if (active != null) queuedBytes -= active.heldBytes();
    if (waiting.size() <= MAX_QUEUED / 2 && queuedBytes <= maxQueuedBytes / 2 && !ctx.channel().config().isAutoRead()) {
      ctx.channel().config().setAutoRead(true);
    }
    if (active == null) {
      armIdleTimer();
    } else {
      active.start();
    }
  }

  /** {@code exchange} issued its last write (any thread): the next starts on the event loop, after those writes. */
  private void ended(Exchange exchange) {
    try {
      ctx.executor().execute(() -> {
        if (active == exchange && !closed) next();
      });
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // the event loop is shutting down with the node: its connections close with it
    }
  }

  @Override
  public void channelWritabilityChanged(ChannelHandlerContext ctx) {
    if (ctx.channel().isWritable()) {
      cancelReadStallTimer();
    } else if (readStallTimer == null) {
      readStallTimer = ctx.executor().schedule(() -> {
        readStallTimer = null;
        if (!ctx.channel().isWritable()) {
          LOG.warn("closing HTTP connection {}: its client read nothing of the answer for {} ms (--http-idle-timeout)",
              ctx.channel().remoteAddress(), idleTimeout.toMillis());
          ctx.close();
        }
      }, idleTimeout.toNanos(), TimeUnit.NANOSECONDS);
    }
    if (active != null) active.writabilityChanged();
    ctx.fireChannelWritabilityChanged();
  }

  private void cancelReadStallTimer() {
    if (readStallTimer != null) {
      readStallTimer.cancel(false);
      readStallTimer = null;
    }
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    closed = true;
    cancelIdleTimer();
    cancelReadStallTimer();
    if (active != null) active.connectionClosed();
    for (Exchange e : waiting) e.connectionClosed();
    waiting.clear();
    ctx.fireChannelInactive();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    LOG.debug("HTTP connection failed", cause);
    ctx.close();
  }

  private void armIdleTimer() {
    cancelIdleTimer();
    if (closed) return;
    idleTimer = ctx.executor().schedule(() -> {
      if (active == null && waiting.isEmpty()) {
        LOG.debug("closing HTTP connection {}: no whole request within {} ms (--http-idle-timeout)", ctx.channel().remoteAddress(), idleTimeout.toMillis());
        ctx.close();
      }
    }, idleTimeout.toNanos(), TimeUnit.NANOSECONDS);
  }

  private void cancelIdleTimer() {
    if (idleTimer != null) {
      idleTimer.cancel(false);
      idleTimer = null;
    }
  }
}
