package sphinxserve.server.generate;

import java.util.concurrent.TimeUnit;

/**
 * Counts the service's calls in progress (Generate streams, PutImage) so that shutdown can wait for exactly
 * those: long-lived calls of other services (a load balancer's {@code Health/Watch}) never end by
 * themselves and would otherwise hold a drain for its whole period.
 */
public final class InFlightCalls {

  private final Object lock = new Object();
  // @GuardedBy("lock")
  private int numCalls;

  /** A call started. */
  public void enter() {
    synchronized (lock) {
      numCalls++;
    }
  }

  /** A call ended (completed, failed or cancelled); once per {@link #enter}. */
  public void exit() {
    synchronized (lock) {
      if (--numCalls == 0) lock.notifyAll();
    }
  }

  /** Calls in progress now. */
  public int numCalls() {
    synchronized (lock) {
      return numCalls;
    }
  }

  /** Waits until no call is in progress, at most {@code timeout}; whether none is. */
  public boolean awaitNone(long timeout, TimeUnit unit) throws InterruptedException {
    long end = System.nanoTime() + unit.toNanos(timeout);
    synchronized (lock) {
      while (numCalls > 0) {
        long left = end - System.nanoTime();
        if (left <= 0) return false;
        TimeUnit.NANOSECONDS.timedWait(lock, left);
      }
      return true;
    }
  }
}
