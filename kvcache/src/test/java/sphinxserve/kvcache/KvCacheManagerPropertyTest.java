package sphinxserve.kvcache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;

/**
 * Random interleavings of start (lookup + allocate), append, write, fork, free, lookup and evict against a simple
 * model. After every operation: the invariant checker; blocks conserved; reference counts equal the number of
 * tables holding a block; the LRU equals the model's (least recently freed first, hits removed, evictions from
 * the head); every sequence's computed K/V bytes equal what was written for its tokens; every prefix hit
 * returns exactly the model's longest cached prefix, with the bytes written for that prefix.
 */
class KvCacheManagerPropertyTest {

  enum Kind { START, APPEND, WRITE, FORK, FREE, LOOKUP, EVICT, DOUBLE_FREE }

  record Op(Kind kind, int a, int b) {}

  /** Placeholder id of image positions: the same for every image. */
  static final int PLACEHOLDER = 999;

  /** Keys with colliding token streams: two bundles, a salt, two images over the same positions. */
  static final List<PrefixKey> KEYS = List.of(
      PrefixKey.of("b1"),
      PrefixKey.of("b1", "tenant", List.of()),
      PrefixKey.of("b2"),
      PrefixKey.of("b1", null, List.of(new ImageSpan("img-a", 3, 40))),
      PrefixKey.of("b1", null, List.of(new ImageSpan("img-b", 3, 40))));

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<Kind> kinds = Arbitraries.frequency(
        Tuple.of(5, Kind.START), Tuple.of(5, Kind.APPEND), Tuple.of(7, Kind.WRITE), Tuple.of(2, Kind.FORK),
        Tuple.of(3, Kind.FREE), Tuple.of(3, Kind.LOOKUP), Tuple.of(1, Kind.EVICT), Tuple.of(1, Kind.DOUBLE_FREE));
    Arbitrary<Integer> ints = Arbitraries.integers().between(0, 1 << 20);
    return Combinators.combine(kinds, ints, ints).as(Op::new).list().ofMinSize(1).ofMaxSize(70);
  }

  @Provide
  Arbitrary<Integer> blockSizes() {
    return Arbitraries.of(1, 2, 4, 16);
  }

  @Property(tries = 400)
  void randomInterleavings_matchModel(@ForAll("ops") List<Op> ops, @ForAll("blockSizes") int blockSize) {
    int numBlocks = Math.max(6, 96 / blockSize);
    try (KvCacheStorage storage = new KvCacheStorage(KvFixture.layout(blockSize, numBlocks));
        KvCacheStorage scratch = new KvCacheStorage(KvFixture.layout(blockSize, 1))) {
      Model model = new Model(new KvCacheManager(storage), storage, scratch);
      for (Op op : ops) {
        model.apply(op);
        model.check();
      }
    }
  }

  /** A sequence as the model sees it. */
  static final class ModelSeq {
    final PrefixKey key;
    int[] tokens;
    int numTokens;
    int numComputed;
    int numRegistered;

    ModelSeq(PrefixKey key, int[] tokens, int numTokens, int numComputed, int numRegistered) {
      this.key = key;
      this.tokens = tokens;
      this.numTokens = numTokens;
      this.numComputed = numComputed;
      this.numRegistered = numRegistered;
    }

    ModelSeq copy() {
      return new ModelSeq(key, tokens.clone(), numTokens, numComputed, numRegistered);
    }
  }

  record Prompt(PrefixKey key, int[] tokens) {}

  static final class Model {
    final KvCacheManager manager;
    final KvCacheStorage storage;
    final KvCacheStorage scratch;
    final int bs;
    final Map<Long, ModelSeq> seqs = new LinkedHashMap<>();
    final List<Prompt> history = new ArrayList<>();
    final Set<Long> freedIds = new HashSet<>();
    final Map<Long, Integer> blockByChain = new HashMap<>(); // content chain at a full block's end → block
    final Map<Integer, Long> chainByBlock = new HashMap<>();
    final List<Integer> lru = new ArrayList<>(); // least recently freed first
    long nextSeqId = 1;

    Model(KvCacheManager manager, KvCacheStorage storage, KvCacheStorage scratch) {
      this.manager = manager;
      this.storage = storage;
      this.scratch = scratch;
      this.bs = storage.layout().blockSize();
    }

    void apply(Op op) {
      switch (op.kind()) {
        case START -> start(op.a(), op.b());
        case APPEND -> { if (!seqs.isEmpty()) append(pick(op.a()), op.b()); }
        case WRITE -> { if (!seqs.isEmpty()) write(pick(op.a()), op.b()); }
        case FORK -> { if (!seqs.isEmpty()) fork(pick(op.a())); }
        case FREE -> { if (!seqs.isEmpty()) free(pick(op.a())); }
        case LOOKUP -> lookup(op.a(), op.b());
        case EVICT -> evict(op.a() % 4);
        case DOUBLE_FREE -> {
          if (!freedIds.isEmpty()) {
            long id = freedIds.iterator().next();
            assertThrows(IllegalStateException.class, () -> manager.free(id));
            assertThrows(IllegalStateException.class, () -> manager.blockTable(id));
          }
        }
      }
    }

    long pick(int a) {
      List<Long> ids = new ArrayList<>(seqs.keySet());
      return ids.get(a % ids.size());
    }

    static int tokenAt(PrefixKey key, int position, SplittableRandom random) {
      for (ImageSpan span : key.imageSpans()) if (position >= span.start() && position < span.end()) return PLACEHOLDER;
      return random.nextInt(3);
    }

    Prompt newPrompt(int a, int b) {
      SplittableRandom random = new SplittableRandom(b);
      if (!history.isEmpty() && a % 3 != 0) { // reuse an earlier prompt's prefix: the interesting case
        Prompt src = history.get(a % history.size());
        PrefixKey key = a % 7 == 0 ? KEYS.get(random.nextInt(KEYS.size())) : src.key();
        int keep = random.nextInt(src.tokens().length + 1);
        int len = Math.max(1, keep + random.nextInt(20));
        int[] tokens = Arrays.copyOf(src.tokens(), len);
        for (int p = keep; p < len; p++) tokens[p] = tokenAt(key, p, random);
        return new Prompt(key, tokens);
      }
      PrefixKey key = KEYS.get(random.nextInt(KEYS.size()));
      int[] tokens = new int[1 + random.nextInt(60)];
      for (int p = 0; p < tokens.length; p++) tokens[p] = tokenAt(key, p, random);
      return new Prompt(key, tokens);
    }

    void start(int a, int b) {
      Prompt prompt = newPrompt(a, b);
      history.add(prompt);
      int len = prompt.tokens().length;
      ComputedPrefix prefix = manager.computedPrefix(prompt.key(), prompt.tokens(), len);
      checkLookup(prompt.key(), prompt.tokens(), len, prefix);
      long id = nextSeqId++;
      KvCacheStats before = manager.stats();
      AllocationResult result = manager.allocateSlots(id, prompt.key(), prefix, len - prefix.numTokens());
      if (result.ok()) {
        for (int i = 0; i < prefix.numBlocks(); i++) lru.remove(Integer.valueOf(prefix.blockId(i))); // revived
        evicted(manager.stats().numEvictions() - before.numEvictions());
        seqs.put(id, new ModelSeq(prompt.key(), prompt.tokens().clone(), len, prefix.numTokens(), prefix.numBlocks()));
      } else {
        checkRefused(result, before);
        assertFalse(manager.contains(id));
      }
    }

    void append(long id, int b) {
      ModelSeq seq = seqs.get(id);
      SplittableRandom random = new SplittableRandom(b);
      int n = 1 + random.nextInt(20);
      KvCacheStats before = manager.stats();
      int[] tableBefore = manager.blockTable(id);
      AllocationResult result = manager.allocateSlots(id, n);
      if (result.ok()) {
        seq.tokens = Arrays.copyOf(seq.tokens, seq.numTokens + n);
        for (int p = seq.numTokens; p < seq.numTokens + n; p++) seq.tokens[p] = tokenAt(seq.key, p, random);
        seq.numTokens += n;
        evicted(manager.stats().numEvictions() - before.numEvictions());
        assertEquals(seq.numTokens, manager.numSlots(id));
      } else {
        checkRefused(result, before);
        assertArrayEquals(tableBefore, manager.blockTable(id));
        assertEquals(seq.numTokens, manager.numSlots(id));
      }
    }

    void write(long id, int b) {
      ModelSeq seq = seqs.get(id);
      int upTo = seq.numComputed + b % (seq.numTokens - seq.numComputed + 1);
      int[] table = manager.blockTable(id);
      long[] contents = KvFixture.contents(seq.key, seq.tokens, seq.numTokens);
      for (int p = seq.numComputed; p < upTo; p++) {
        assertEquals(1, manager.pool().refCount(table[p / bs]), "a write would land in a shared block");
        KvFixture.writeToken(storage, table, p, contents[p]);
      }
      manager.markComputed(id, seq.tokens, upTo);
      seq.numComputed = upTo;
      for (int i = seq.numRegistered; i < upTo / bs; i++) {
        long chain = contents[(i + 1) * bs - 1];
        if (!chainByBlock.containsKey(table[i]) && !blockByChain.containsKey(chain)) {
          blockByChain.put(chain, table[i]);
          chainByBlock.put(table[i], chain);
        }
      }
      seq.numRegistered = Math.max(seq.numRegistered, upTo / bs);
    }

    void fork(long id) {
      ModelSeq seq = seqs.get(id);
      long child = nextSeqId++;
      if (seq.numComputed != seq.numTokens) {
        assertThrows(IllegalStateException.class, () -> manager.fork(id, child));
        assertFalse(manager.contains(child));
        return;
      }
      manager.fork(id, child);
      seqs.put(child, seq.copy());
      assertArrayEquals(manager.blockTable(id), manager.blockTable(child));
    }

    void free(long id) {
      int[] table = manager.blockTable(id);
      manager.free(id);
      seqs.remove(id);
      freedIds.add(id);
      Set<Integer> stillHeld = new HashSet<>();
      for (long other : seqs.keySet()) for (int block : manager.blockTable(other)) stillHeld.add(block);
      for (int i = table.length - 1; i >= 0; i--) {
        if (!stillHeld.contains(table[i]) && chainByBlock.containsKey(table[i])) lru.add(table[i]);
      }
    }

    void lookup(int a, int b) {
      PrefixKey key;
      int[] tokens;
      if (!seqs.isEmpty() && a % 2 == 0) {
        ModelSeq seq = seqs.get(pick(a / 2));
        key = seq.key;
        tokens = Arrays.copyOf(seq.tokens, seq.numTokens);
      } else if (!history.isEmpty()) {
        Prompt prompt = history.get(a % history.size());
        key = prompt.key();
        tokens = prompt.tokens();
      } else {
        return;
      }
      int len = b % (tokens.length + 1);
      checkLookup(key, tokens, len, manager.computedPrefix(key, tokens, len));
    }

    void evict(int maxBlocks) {
      int n = manager.evictCachedBlocks(maxBlocks);
      assertEquals(Math.min(maxBlocks, lru.size()), n);
      evicted(n);
    }

    /** The pool evicted {@code n} blocks: they must be the LRU's oldest. */
    void evicted(long n) {
      for (long i = 0; i < n; i++) {
        int block = lru.remove(0);
        blockByChain.remove(chainByBlock.remove(block));
      }
    }

    void checkRefused(AllocationResult result, KvCacheStats before) {
      AllocationResult.NotEnoughBlocks refused = assertInstanceOf(AllocationResult.NotEnoughBlocks.class, result);
      assertTrue(refused.numBlocksNeeded() > refused.numBlocksAvailable());
      assertEquals(before, manager.stats(), "a refused allocation changed the pool");
    }

    void checkLookup(PrefixKey key, int[] tokens, int len, ComputedPrefix prefix) {
      long[] contents = KvFixture.contents(key, tokens, len);
      int maxBlocks = len <= bs ? 0 : (len - 1) / bs;
      int hits = 0;
      while (hits < maxBlocks && blockByChain.containsKey(contents[(hits + 1) * bs - 1])) hits++;
      assertEquals(hits, prefix.numBlocks(), "longest cached prefix");
      assertEquals(hits * bs, prefix.numTokens());
      for (int i = 0; i < hits; i++) {
        assertEquals(blockByChain.get(contents[(i + 1) * bs - 1]), prefix.blockId(i));
        assertArrayEquals(KvFixture.expectedBlockBytes(scratch, contents, i * bs, bs), storage.blockBytes(prefix.blockId(i), bs),
            "prefix hit block " + i + " holds other K/V");
      }
    }

    void check() {
      manager.checkInvariants();
      KvCacheStats stats = manager.stats();
      assertEquals(stats.numBlocks(), stats.numFreeBlocks() + stats.numCachedBlocks() + stats.numInUseBlocks(), "blocks conserved");
      assertArrayEquals(lru.stream().mapToInt(Integer::intValue).toArray(), manager.pool().lruOrder(), "LRU order");
      Map<Integer, Integer> holders = new HashMap<>();
      for (var entry : seqs.entrySet()) {
        long id = entry.getKey();
        ModelSeq seq = entry.getValue();
        int[] table = manager.blockTable(id);
        for (int block : table) holders.merge(block, 1, Integer::sum);
        assertEquals(seq.numTokens, manager.numSlots(id));
        assertEquals(seq.numComputed, manager.numComputedTokens(id));
        long[] contents = KvFixture.contents(seq.key, seq.tokens, seq.numComputed);
        for (int i = 0; i * bs < seq.numComputed; i++) {
          int n = Math.min(bs, seq.numComputed - i * bs);
          assertArrayEquals(KvFixture.expectedBlockBytes(scratch, contents, i * bs, n), storage.blockBytes(table[i], n),
              "sequence " + id + " block " + i + " K/V changed");
        }
      }
      holders.forEach((block, n) -> assertEquals(n, manager.pool().refCount(block), "refCount of shared block " + block));
      for (var entry : chainByBlock.entrySet()) assertTrue(manager.pool().hashOf(entry.getKey()) != null);
    }
  }
}
