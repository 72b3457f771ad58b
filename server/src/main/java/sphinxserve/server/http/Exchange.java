package sphinxserve.server.http;

/**
 * One request and its response on a connection. {@link ExchangeQueue} starts exchanges one at a time in the order
 * their requests arrived; each calls its end callback exactly once, after its last write was issued. Every method is
 * called on the connection's event loop.
 */
interface Exchange {

  /** It is this exchange's turn: answer (possibly later, from another thread). */
  void start();

  /** The connection's writability changed (Netty's {@code channelWritabilityChanged}): writes may resume. */
  default void writabilityChanged() {}

  /** Bytes of request body this exchange holds while it waits for its turn. */
  default long heldBytes() {
    return 0;
  }

  /** The connection closed, before or after {@link #start}: stop work, free what is held; writing is pointless. */
  void connectionClosed();
}
