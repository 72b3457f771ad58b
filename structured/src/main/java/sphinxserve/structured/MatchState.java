package sphinxserve.structured;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * A configuration of the pushdown matcher after some bytes: the set of stacks whose top is a terminal, and
 * whether the output may end here. Canonical (stacks sorted and unique) and interned per compiled grammar, so
 * equal configurations are one object, and memoised: its transitions by byte and its token mask are computed
 * once and shared by every request (a lazily built DFA over the pushdown configurations). Thread-safe: the
 * configuration is final; the memo slots are written with release and read with acquire, and racing writers
 * store equal values.
 */
final class MatchState {
  /** No stack survives: the bytes so far are not a prefix of any sentence. */
  static final MatchState DEAD = new MatchState(new Frame[0], false, new long[4]);

  final Frame[] frames;
  final boolean accepting;
  private final int hash;
  /** Union of the bytes the stacks' top terminals accept: any other byte leads to {@link #DEAD}. */
  private final long live0, live1, live2, live3;
  private final int rank1, rank2, rank3;
  /** Successor by live byte, indexed by the byte's rank among the live bytes; null until computed. */
  private final AtomicReferenceArray<MatchState> next;
  /** The token mask, once computed (and while the grammar's mask budget allows caching it). */
  private volatile StoredMask mask;

  /** A state over canonical {@code frames} whose live bytes are {@code live} (4 words). */
  MatchState(Frame[] frames, boolean accepting, long[] live) {
    this.frames = frames;
    this.accepting = accepting;
    this.hash = Arrays.hashCode(frames) * 2 + (accepting ? 1 : 0);
    live0 = live[0];
    live1 = live[1];
    live2 = live[2];
    live3 = live[3];
    rank1 = Long.bitCount(live0);
    rank2 = rank1 + Long.bitCount(live1);
    rank3 = rank2 + Long.bitCount(live2);
    int numLive = rank3 + Long.bitCount(live3);
    next = new AtomicReferenceArray<>(numLive);
  }

  /** Whether no byte can follow: nothing but the end of the output is possible (or nothing at all). */
  boolean isFinal() {
    return frames.length == 0;
  }

  /** Whether some stack accepts byte {@code b}. */
  boolean isLive(int b) {
    long w = switch (b >>> 6) {
      case 0 -> live0;
      case 1 -> live1;
      case 2 -> live2;
      default -> live3;
    };
    return (w >>> (b & 63) & 1L) != 0;
  }

  /** The memoised successor by live byte {@code b}; null when not computed yet. */
  MatchState cachedNext(int b) {
    return next.getAcquire(rank(b));
  }

  /** Memoises the successor by live byte {@code b}. */
  void cacheNext(int b, MatchState state) {
    next.setRelease(rank(b), state);
  }

  private int rank(int b) {
    long below = (1L << (b & 63)) - 1;
    return switch (b >>> 6) {
      case 0 -> Long.bitCount(live0 & below);
      case 1 -> rank1 + Long.bitCount(live1 & below);
      case 2 -> rank2 + Long.bitCount(live2 & below);
      default -> rank3 + Long.bitCount(live3 & below);
    };
  }

  /** The cached mask, or null. */
  StoredMask mask() {
    return mask;
  }

  void setMask(StoredMask stored) {
    mask = stored;
  }

  @Override
  public int hashCode() {
    return hash;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof MatchState s && s.hash == hash && s.accepting == accepting && Arrays.equals(s.frames, frames);
  }
}
