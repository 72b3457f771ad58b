package sphinxserve.structured;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import sphinxserve.api.TokenConstraint;

/**
 * A grammar bound to a vocabulary: the {@link TokenConstraint} the scheduler applies. Immutable from the outside
 * and thread-safe: one instance serves every request with the same constraint, on any sampler thread; each
 * request gets its own {@link GrammarMatcher}.
 */
public final class CompiledGrammar implements TokenConstraint {
  /*
   * Matching is llama.cpp's: a configuration is a set of stacks (Frame lists) whose tops are terminals; a byte
   * advances every stack whose top accepts it, then expands the successors (closure: a rule reference pushes its
   * continuation and fans out to its alternatives; the end of an alternative pops; a reference that ends its
   * alternative is a tail call and pushes nothing, so generated loops run in constant stack). Left recursion is
   * refused when the grammar is parsed; the visited set stops the harmless cycles of nullable loops such as
   * (a?)*. A stack deeper than MAX_STACK_DEPTH or a configuration of more than MAX_STACKS stacks is a dead end
   * (the mask only ever narrows).
   *
   * Every configuration is interned (MatchState), and memoises its successors by byte and its token mask: a
   * lazily built DFA over the configurations the requests actually reach. A mask is one preorder walk of the
   * vocabulary's byte trie carrying the state per depth, pruning a subtree at its first dead byte; inside loops
   * (a JSON string, whitespace, digits) the walk runs on memoised transitions and the next visit of the same
   * configuration is a copy of the cached mask. This caches per whole configuration; xgrammar's finer split
   * (tokens decided by the top of the stack alone versus those that depend on the rest) would also share masks
   * across nesting depths and is left for later.
   *
   * Cached masks are stored as the allowed ids, the rejected ids or a bitset, whichever is smallest
   * (StoredMask, xgrammar's adaptive storage): inside a string a 32k mask is a few hundred rejected ids, not 4 KB.
   * Memory is bounded per grammar: when the interned states exceed MAX_STATES or the cached masks exceed
   * MAX_MASK_BYTES, a new generation starts from a fresh initial state; matchers in flight finish on the old
   * one, which is then garbage.
   */

  /** Deepest stack a configuration may hold (JSON nested about this deep still matches). */
  static final int MAX_STACK_DEPTH = 4096;

  /** Most stacks in one configuration (an ambiguous grammar can multiply them). */
  static final int MAX_STACKS = 1_024;

  /** Interned configurations per generation. */
  static final int MAX_STATES = 50_000;

  /** Bytes of cached masks per generation. */
  static final long MAX_MASK_BYTES = 16L << 20;

  private final Grammar grammar;
  private final ByteProgram program;
  private final TokenVocabulary vocabulary;
  private volatile Generation generation;
  private final LongAdder maskHits = new LongAdder();
  private final LongAdder maskMisses = new LongAdder();
  private final LongAdder maskMissNanos = new LongAdder();

  /**
   * Masks served since compilation: from the cache ({@code hits}) or computed by a trie walk ({@code misses},
   * taking {@code missNanos} in all). For benchmarks and metrics.
   */
  public record MaskStats(long hits, long misses, long missNanos) {}

  /** The interned configurations of one generation. */
  private static final class Generation {
    final ConcurrentHashMap<MatchState, MatchState> states = new ConcurrentHashMap<>();
    final AtomicLong maskBytes = new AtomicLong();
    final MatchState initial;

    Generation(MatchState initial) {
      this.initial = initial;
      states.put(initial, initial);
    }
  }

  CompiledGrammar(Grammar grammar, ByteProgram program, TokenVocabulary vocabulary) {
    this.grammar = grammar;
    this.program = program;
    this.vocabulary = vocabulary;
    MatchState initial = initialState();
    if (initial == MatchState.DEAD) throw new GrammarException("grammar: the root rule matches nothing");
    this.generation = new Generation(initial);
  }

  /** A matcher at the start of the output. */
  @Override
  public GrammarMatcher newMatcher() {
    return new GrammarMatcher(this, generation.initial);
  }

  /** The grammar this was compiled from. */
  public Grammar grammar() {
    return grammar;
  }

  /** The vocabulary masks are over. */
  public TokenVocabulary vocabulary() {
    return vocabulary;
  }

  /** Elements of the byte-level program (a size measure for reports and cache weights). */
  public int programSize() {
    return program.size();
  }

  /** Configurations interned so far in the current generation. */
  int numStates() {
    return generation.states.size();
  }

  /** Masks served so far, over every matcher of this grammar (counters; cheap to read). */
  public MaskStats maskStats() {
    return new MaskStats(maskHits.sum(), maskMisses.sum(), maskMissNanos.sum());
  }

  /** The state after byte {@code b} (0..255) from {@code s}; {@link MatchState#DEAD} when no stack accepts it. */
  MatchState next(MatchState s, int b) {
    if (!s.isLive(b)) return MatchState.DEAD;
    MatchState n = s.cachedNext(b);
    if (n == null) {
      n = intern(step(s, b));
      s.cacheNext(b, n);
    }
    return n;
  }

  /** The state after {@code bytes} from {@code s}; {@link MatchState#DEAD} at the first byte no stack accepts. */
  MatchState next(MatchState s, byte[] bytes) {
    for (byte b : bytes) {
      s = next(s, b & 0xFF);
      if (s == MatchState.DEAD) return s;
    }
    return s;
  }

  /** Writes the allowed-token mask of {@code s} into the first {@link TokenVocabulary#numWords} words of {@code out}. */
  void fillMask(MatchState s, long[] out) {
    StoredMask cached = s.mask();
    if (cached != null) {
      maskHits.increment();
      cached.copyTo(out);
      return;
    }
    long start = System.nanoTime();
    long[] bits = computeMask(s);
    maskMissNanos.add(System.nanoTime() - start);
    maskMisses.increment();
    System.arraycopy(bits, 0, out, 0, bits.length);
    StoredMask stored = StoredMask.of(bits, vocabulary.size());
    Generation g = generation;
    if (g.maskBytes.addAndGet(stored.numBytes()) > MAX_MASK_BYTES) {
      renew(g);
    } else {
      s.setMask(stored);
    }
  }

  /**
   * Longest one mask computation may take: it runs on the engine's sampling threads, inside a step every request of
   * the batch waits for, so a grammar whose states are this expensive (a hugely ambiguous one) fails its own request
   * rather than stalling everyone's tokens.
   */
  static final long MASK_BUDGET_NANOS = 100_000_000L;

  /** Trie nodes walked between two looks at the clock. */
  private static final int CLOCK_EVERY_NODES = 4096;

  /** The mask of {@code s} by a walk of the trie, bypassing the mask cache (the benchmark measures it). */
  long[] computeMask(MatchState s) {
    TokenVocabulary v = vocabulary;
    long[] bits = new long[v.numWords()];
    if (s.accepting) {
      for (int id : v.eosIdsShared()) bits[id >>> 6] |= 1L << id;
    }
    if (s.isFinal()) return bits;
    byte[] label = v.label;
    int[] depth = v.depth;
    int[] subtreeEnd = v.subtreeEnd;
    int[] tokenFrom = v.tokenFrom;
    int[] tokenTo = v.tokenTo;
    int[] ids = v.sortedIds;
    MatchState[] at = new MatchState[v.maxDepth + 1];
    at[0] = s;
    int numNodes = label.length;
    long deadline = System.nanoTime() + MASK_BUDGET_NANOS;
    int untilClock = CLOCK_EVERY_NODES;
    for (int i = 0; i < numNodes; ) {
      if (--untilClock == 0) {
        untilClock = CLOCK_EVERY_NODES;
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("the output constraint's token mask took over " + MASK_BUDGET_NANOS / 1_000_000
              + " ms to compute (the grammar is too ambiguous to decode with)");
        }
      }
      int d = depth[i];
      MatchState n = next(at[d - 1], label[i] & 0xFF);
      if (n == MatchState.DEAD) {
        i = subtreeEnd[i];
        continue;
      }
      at[d] = n;
      for (int k = tokenFrom[i], end = tokenTo[i]; k < end; k++) {
        int id = ids[k];
        bits[id >>> 6] |= 1L << id;
      }
      i++;
    }
    return bits;
  }

  private MatchState intern(MatchState s) {
    if (s == MatchState.DEAD) return s;
    Generation g = generation;
    MatchState known = g.states.putIfAbsent(s, s);
    if (known != null) return known;
    if (g.states.size() > MAX_STATES) renew(g);
    return s;
  }

  /** Starts a new generation unless another thread already did. */
  private synchronized void renew(Generation old) {
    if (generation == old) generation = new Generation(initialState());
  }

  private MatchState initialState() {
    Closure c = new Closure();
    for (int alt : program.ruleAlternatives[program.rootRule]) c.push(new Frame(alt, null));
    return c.finish();
  }

  /** The configuration after byte {@code b} from {@code s}, not interned. */
  private MatchState step(MatchState s, int b) {
    Closure c = new Closure();
    int[] code = program.code;
    for (Frame f : s.frames) {
      if (program.matches(code[f.pos], b)) c.push(new Frame(f.pos + 1, f.parent));
    }
    return c.finish();
  }

  /** Expands frames until every stack's top is a terminal (or the stack is empty: accepting). */
  private final class Closure {
    private final ArrayDeque<Frame> work = new ArrayDeque<>();
    private final HashSet<Frame> visited = new HashSet<>();
    private final List<Frame> tops = new ArrayList<>();
    private boolean accepting;

    void push(Frame f) {
      if (f.depth <= MAX_STACK_DEPTH) work.push(f); // deeper: a dead end
    }

    MatchState finish() {
      int[] code = program.code;
      while (!work.isEmpty()) {
        Frame f = work.pop();
        if (!visited.add(f)) continue;
        int e = code[f.pos];
        if (e >= 0) {
          tops.add(f);
          if (tops.size() > MAX_STACKS) return MatchState.DEAD;
        } else if (e == ByteProgram.END) {
          if (f.parent == null) {
            accepting = true;
          } else {
            work.push(f.parent);
          }
        } else {
          Frame continuation = code[f.pos + 1] == ByteProgram.END ? f.parent : new Frame(f.pos + 1, f.parent);
          if (continuation != null && continuation.depth >= MAX_STACK_DEPTH) continue; // a dead end
          for (int alt : program.ruleAlternatives[ByteProgram.refRule(e)]) push(new Frame(alt, continuation));
        }
      }
      if (tops.isEmpty() && !accepting) return MatchState.DEAD;
      Frame[] frames = tops.toArray(new Frame[0]);
      Arrays.sort(frames, Frame::compare);
      long[] live = new long[4];
      for (Frame f : frames) {
        int set = code[f.pos];
        for (int w = 0; w < 4; w++) live[w] |= program.byteSets[set * 4 + w];
      }
      return new MatchState(frames, accepting, live);
    }
  }
}
