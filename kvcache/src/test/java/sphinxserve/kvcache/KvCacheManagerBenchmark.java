package sphinxserve.kvcache;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Cost of the KV cache's hot paths: appending tokens one at a time then freeing the sequence (per token), and
 * looking up the cached prefix of a 2,000-token prompt (text only, or with one 1,455-token SPHINX image).
 *
 * <p>Run: {@code bin/bench-kvcache KvCacheManagerBenchmark -f 1 -wi 3 -i 5} (results in docs/PERFORMANCE.md).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class KvCacheManagerBenchmark {

  /** Tokens appended per invocation of the append benchmarks. */
  static final int APPEND_TOKENS = 1024;
  /** Prompt length of the lookup benchmark. */
  static final int PROMPT_TOKENS = 2000;
  /** Image tokens of one SPHINX-1k image: 5 views × 291 (DESIGN.md). */
  static final int IMAGE_TOKENS = 1455;

  /** Prompt kind of the lookup benchmark: text only, or BOS + one image + text. */
  @Param({"text", "image"})
  public String prompt;

  private KvCacheStorage storage;
  private KvCacheManager manager;
  private PrefixKey key;
  private int[] tokenIds;
  private long nextSeqId = 1;

  @Setup(Level.Trial)
  public void setUp() {
    // The smallest real layout: bookkeeping cost does not depend on head sizes (only copy-on-write would).
    storage = new KvCacheStorage(new KvCacheLayout(1, 1, 8, KvCacheLayout.DEFAULT_BLOCK_SIZE, 16_384));
    manager = new KvCacheManager(storage);
    key = prompt.equals("image")
        ? PrefixKey.of("sphinx-1k", null, List.of(new ImageSpan("9f2c".repeat(16), 1, 1 + IMAGE_TOKENS)))
        : PrefixKey.of("sphinx-1k");
    tokenIds = new int[Math.max(PROMPT_TOKENS, APPEND_TOKENS) + 1];
    for (int i = 0; i < tokenIds.length; i++) tokenIds[i] = (i * 7919) % 32_000;
    // Cache the prompt: compute it in one sequence and free it, so its blocks sit in the LRU.
    long seqId = nextSeqId++;
    manager.allocateSlots(seqId, key, ComputedPrefix.NONE, PROMPT_TOKENS);
    manager.markComputed(seqId, tokenIds, PROMPT_TOKENS);
    manager.free(seqId);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    storage.close();
  }

  /** Append one token at a time (a decode step each) for 1,024 tokens, then free: cost per token. */
  @Benchmark
  @OperationsPerInvocation(APPEND_TOKENS)
  public long appendThenFree() {
    long seqId = nextSeqId++;
    manager.allocateSlots(seqId, key, ComputedPrefix.NONE, 0);
    for (int i = 0; i < APPEND_TOKENS; i++) manager.allocateSlots(seqId, 1);
    long numSlots = manager.numSlots(seqId);
    manager.free(seqId);
    return numSlots;
  }

  /** As {@link #appendThenFree}, also marking each token computed (hashes and registers every full block). */
  @Benchmark
  @OperationsPerInvocation(APPEND_TOKENS)
  public long appendMarkComputedThenFree() {
    long seqId = nextSeqId++;
    int[] ids = tokenIds;
    ids[0] = (int) seqId; // a new prefix each time: every full block is hashed and registered
    manager.allocateSlots(seqId, key, ComputedPrefix.NONE, 0);
    for (int i = 0; i < APPEND_TOKENS; i++) {
      manager.allocateSlots(seqId, 1);
      manager.markComputed(seqId, ids, i + 1);
    }
    long numSlots = manager.numSlots(seqId);
    manager.free(seqId);
    ids[0] = 0;
    return numSlots;
  }

  /** Longest cached prefix of the 2,000-token prompt (124 full blocks hit): hashing plus map lookups. */
  @Benchmark
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public ComputedPrefix prefixLookup2000() {
    return manager.computedPrefix(key, tokenIds, PROMPT_TOKENS);
  }
}
