package sphinxserve.scheduler;

/**
 * The room one step has left for prefill chunks, filled chunk by chunk while the scheduler plans it.
 *
 * <p>Two limits: the step's token budget counts real tokens; a latency target's budget counts what the runtime
 * computes, and the runtime runs a step's prefill chunks together with every chunk padded to the longest
 * (OnnxModelRuntime), so there a step's prefill costs {@code chunks × longest chunk}. Without that second
 * count, the 10-token tail of one prompt beside a 110-token chunk of the next costs 220 tokens' time, and
 * exactly those steps made a latency target's tail (the storm in docs/PERFORMANCE.md).
 */
final class PrefillRoom {

  private static final int UNLIMITED = Integer.MAX_VALUE;

  private int tokens;
  private final int paddedBudget;
  private int chunks;
  private int longest;

  private PrefillRoom(int tokens, int paddedBudget) {
    this.tokens = tokens;
    this.paddedBudget = paddedBudget;
  }

  /** Room for {@code tokens} real tokens, chunks of any length. */
  static PrefillRoom ofTokens(int tokens) {
    return new PrefillRoom(tokens, UNLIMITED);
  }

  /** Room for {@code tokens} real tokens and {@code paddedBudget} padded ones (chunks × the longest chunk). */
  static PrefillRoom ofTokensAndPadded(int tokens, int paddedBudget) {
    return new PrefillRoom(tokens, paddedBudget);
  }

  /** The longest next chunk, up to {@code wanted}, that keeps both limits; 0 when no chunk fits any more. */
  int nextChunk(int wanted) {
    int room = tokens;
    if (paddedBudget != UNLIMITED) {
      int perChunk = paddedBudget / (chunks + 1); // every chunk of the run is padded to the longest
      if (longest > perChunk) return 0;
      room = Math.min(room, perChunk);
    }
    return Math.max(0, Math.min(wanted, room));
  }

  boolean isFull() {
    return nextChunk(1) == 0;
  }

  /** Records a chunk the step took ({@code chunk} ≤ what {@link #nextChunk} allowed). */
  void take(int chunk) {
    tokens -= chunk;
    chunks++;
    longest = Math.max(longest, chunk);
  }
}
