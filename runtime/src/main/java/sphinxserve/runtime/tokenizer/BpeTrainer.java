package sphinxserve.runtime.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/** Learns a byte-level BPE (GPT-2 / LLaMA-3 style) from pre-tokenised pieces and their counts. Deterministic. */
final class BpeTrainer {
  /*
   * Classic BPE training (Sennrich et al. 2016; the incremental form of Hugging Face's BpeTrainer):
   *
   *  - Every distinct piece ("word") is a sequence of symbol ids, starting as its UTF-8 bytes; symbol ids
   *    0..255 are the bytes, later ids are merged tokens in creation order.
   *  - A pair table maps each adjacent pair (left, right) to its count (sum over words of occurrences ×
   *    word count) and to the words it occurs in. The word lists only grow; a stale entry is harmless
   *    because a word is rescanned when the pair is merged.
   *  - A max-heap holds (count, pair) candidates, popped lazily: an entry whose count is no longer the
   *    pair's count is dropped (count went up: a fresher entry exists) or pushed back with the current
   *    count (count went down). Every live pair thus has an entry at least as large as its count, so the
   *    entry accepted is the true best pair.
   *  - Merging rewrites each affected word left to right, subtracts the old word's pairs and adds the new
   *    word's; only pairs containing the new symbol can be new to a word, so only they gain word entries.
   *
   * Cost per merge is proportional to the (length of the) words containing the pair, not to the corpus.
   * Ties are broken by count (higher first), then left token string, then right token string (UTF-16
   * order, smaller first), so the result depends only on the input, never on hash or iteration order.
   * A merge whose result string already exists (the same bytes reached by another split) is recorded but
   * adds no token; training stops when the token count reaches the target.
   */

  private BpeTrainer() {}

  /**
   * Learns merges until the vocabulary holds {@code numTokens} tokens (256 byte tokens included).
   *
   * @param pieceCounts pre-tokenised pieces (raw text, not byte-level) and how often each occurs
   * @throws CorpusTooSmallException when the pieces cannot supply enough merges
   */
  static BpeModel train(Map<String, Long> pieceCounts, int numTokens) {
    if (numTokens < ByteLevel.NUM_BYTES) {
      throw new IllegalArgumentException("BPE vocabulary needs at least the 256 byte tokens, asked for " + numTokens);
    }
    return new Run(pieceCounts).learn(numTokens);
  }

  /** The mutable state of one training run. */
  private static final class Run {
    private final List<String> symbolStrings = new ArrayList<>();
    private final Map<String, Integer> symbolIds = new HashMap<>();
    private final int[][] words;
    private final int[] wordLengths;
    private final long[] wordCounts;
    /** Per word, the last merge step that rewrote it (dedupes repeated word-list entries). */
    private final int[] wordStamps;
    private final PairTable pairs = new PairTable();
    private final PriorityQueue<Candidate> heap;

    Run(Map<String, Long> pieceCounts) {
      for (int b = 0; b < ByteLevel.NUM_BYTES; b++) {
        String s = String.valueOf(ByteLevel.charOf(b));
        symbolIds.put(s, symbolStrings.size());
        symbolStrings.add(s);
      }
      heap = new PriorityQueue<>(this::compare);
      String[] pieces = pieceCounts.keySet().toArray(String[]::new);
      Arrays.sort(pieces);
      words = new int[pieces.length][];
      wordLengths = new int[pieces.length];
      wordCounts = new long[pieces.length];
      wordStamps = new int[pieces.length];
      Arrays.fill(wordStamps, -1);
      for (int w = 0; w < pieces.length; w++) {
        byte[] bytes = pieces[w].getBytes(StandardCharsets.UTF_8);
        long count = pieceCounts.get(pieces[w]);
        if (count <= 0) {
          throw new IllegalArgumentException("piece count must be positive: '" + pieces[w] + "' has " + count);
        }
        int[] symbols = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
          symbols[i] = bytes[i] & 0xFF;
        }
        words[w] = symbols;
        wordLengths[w] = symbols.length;
        wordCounts[w] = count;
        for (int i = 0; i + 1 < symbols.length; i++) {
          int slot = pairs.slotOf(symbols[i], symbols[i + 1]);
          pairs.counts[slot] += count;
          pairs.addWord(slot, w);
        }
      }
      for (int slot = 0; slot < pairs.keys.length; slot++) {
        if (pairs.keys[slot] != PairTable.EMPTY && pairs.counts[slot] > 0) {
          heap.add(new Candidate(pairs.counts[slot], pairs.keys[slot]));
        }
      }
    }

    BpeModel learn(int numTokens) {
      List<String[]> merges = new ArrayList<>();
      LongList touched = new LongList();
      while (symbolStrings.size() < numTokens) {
        Candidate best = pollBest();
        if (best == null) {
          throw new CorpusTooSmallException("corpus supports only " + symbolStrings.size() + " BPE tokens, asked for " + numTokens);
        }
        int left = PairTable.left(best.pair);
        int right = PairTable.right(best.pair);
        String merged = symbolStrings.get(left) + symbolStrings.get(right);
        Integer existing = symbolIds.get(merged);
        int created;
        if (existing != null) {
          created = existing;
        } else {
          created = symbolStrings.size();
          symbolStrings.add(merged);
          symbolIds.put(merged, created);
        }
        merges.add(new String[] {symbolStrings.get(left), symbolStrings.get(right)});
        applyMerge(merges.size() - 1, left, right, created, touched);
      }
      return new BpeModel(symbolStrings, merges);
    }

    private Candidate pollBest() {
      Candidate top;
      while ((top = heap.poll()) != null) {
        int slot = pairs.find(top.pair);
        long current = slot < 0 ? 0 : pairs.counts[slot];
        if (current == top.count) {
          return top;
        }
        if (current > 0 && current < top.count) {
          heap.add(new Candidate(current, top.pair));
        }
      }
      return null;
    }

    private void applyMerge(int step, int left, int right, int created, LongList touched) {
      int slot = pairs.find(PairTable.key(left, right));
      int[] wordIds = pairs.wordLists[slot];
      int numWordIds = pairs.wordListSizes[slot];
      pairs.wordLists[slot] = null;
      pairs.wordListSizes[slot] = 0;
      touched.clear();
      for (int k = 0; k < numWordIds; k++) {
        int w = wordIds[k];
        if (wordStamps[w] == step) {
          continue;
        }
        wordStamps[w] = step;
        int[] symbols = words[w];
        int length = wordLengths[w];
        if (!contains(symbols, length, left, right)) {
          continue;
        }
        long count = wordCounts[w];
        for (int i = 0; i + 1 < length; i++) {
          int s = pairs.slotOf(symbols[i], symbols[i + 1]);
          pairs.counts[s] -= count;
        }
        int out = 0;
        for (int i = 0; i < length; i++) {
          if (i + 1 < length && symbols[i] == left && symbols[i + 1] == right) {
            symbols[out++] = created;
            i++;
          } else {
            symbols[out++] = symbols[i];
          }
        }
        wordLengths[w] = out;
        for (int i = 0; i + 1 < out; i++) {
          int s = pairs.slotOf(symbols[i], symbols[i + 1]);
          pairs.counts[s] += count;
          if (symbols[i] == created || symbols[i + 1] == created) {
            pairs.addWord(s, w);
            touched.add(pairs.keys[s]);
          }
        }
      }
      // Only pairs with the new symbol can have grown; push each once with its final count. Touched pairs
      // are kept as keys because slotOf may have resized the table since.
      for (int k = 0; k < touched.size; k++) {
        int s = pairs.find(touched.values[k]);
        if (pairs.counts[s] > 0 && pairs.pushedStamp[s] != step) {
          pairs.pushedStamp[s] = step;
          heap.add(new Candidate(pairs.counts[s], pairs.keys[s]));
        }
      }
    }

    private static boolean contains(int[] symbols, int length, int left, int right) {
      for (int i = 0; i + 1 < length; i++) {
        if (symbols[i] == left && symbols[i + 1] == right) {
          return true;
        }
      }
      return false;
    }

    /** Higher count first, then smaller left string, then smaller right string. */
    private int compare(Candidate a, Candidate b) {
      if (a.count != b.count) {
        return a.count > b.count ? -1 : 1;
      }
      int c = symbolStrings.get(PairTable.left(a.pair)).compareTo(symbolStrings.get(PairTable.left(b.pair)));
      if (c != 0) {
        return c;
      }
      return symbolStrings.get(PairTable.right(a.pair)).compareTo(symbolStrings.get(PairTable.right(b.pair)));
    }
  }

  /** Thrown when every piece is a single token before the vocabulary is full. */
  static final class CorpusTooSmallException extends IllegalStateException {
    CorpusTooSmallException(String message) {
      super(message);
    }
  }

  /** A growable list of longs. */
  private static final class LongList {
    long[] values = new long[64];
    int size;

    void add(long value) {
      if (size == values.length) {
        values = Arrays.copyOf(values, size * 2);
      }
      values[size++] = value;
    }

    void clear() {
      size = 0;
    }
  }

  /** A heap entry: a pair and its count when pushed. */
  private record Candidate(long count, long pair) {}

  /** Open-addressing map from a symbol pair to its count and the words it occurs in. */
  private static final class PairTable {
    /** Marks an unused slot; real keys are non-negative. */
    static final long EMPTY = -1L;

    long[] keys = new long[1 << 16];
    long[] counts = new long[keys.length];
    int[][] wordLists = new int[keys.length][];
    int[] wordListSizes = new int[keys.length];
    int[] pushedStamp = new int[keys.length];
    private int size;

    PairTable() {
      Arrays.fill(keys, EMPTY);
      Arrays.fill(pushedStamp, -1);
    }

    static long key(int left, int right) {
      return ((long) left << 32) | right;
    }

    static int left(long key) {
      return (int) (key >>> 32);
    }

    static int right(long key) {
      return (int) key;
    }

    /** Slot of {@code key}, or -1. */
    int find(long key) {
      int mask = keys.length - 1;
      for (int i = hash(key) & mask; ; i = (i + 1) & mask) {
        if (keys[i] == key) {
          return i;
        }
        if (keys[i] == EMPTY) {
          return -1;
        }
      }
    }

    /** Slot of the pair, inserted with count 0 when absent. May move every slot (resize). */
    int slotOf(int left, int right) {
      long key = key(left, right);
      int mask = keys.length - 1;
      int i = hash(key) & mask;
      while (keys[i] != EMPTY) {
        if (keys[i] == key) {
          return i;
        }
        i = (i + 1) & mask;
      }
      if (2 * (size + 1) > keys.length) {
        grow();
        return slotOf(left, right);
      }
      keys[i] = key;
      size++;
      return i;
    }

    void addWord(int slot, int word) {
      int[] list = wordLists[slot];
      int n = wordListSizes[slot];
      if (list == null) {
        list = new int[4];
        wordLists[slot] = list;
      } else if (list[n - 1] == word) {
        return;
      } else if (n == list.length) {
        list = Arrays.copyOf(list, n * 2);
        wordLists[slot] = list;
      }
      list[n] = word;
      wordListSizes[slot] = n + 1;
    }

    private void grow() {
      long[] oldKeys = keys;
      long[] oldCounts = counts;
      int[][] oldLists = wordLists;
      int[] oldSizes = wordListSizes;
      int[] oldPushed = pushedStamp;
      int capacity = oldKeys.length * 2;
      keys = new long[capacity];
      Arrays.fill(keys, EMPTY);
      counts = new long[capacity];
      wordLists = new int[capacity][];
      wordListSizes = new int[capacity];
      pushedStamp = new int[capacity];
      int mask = capacity - 1;
      for (int j = 0; j < oldKeys.length; j++) {
        if (oldKeys[j] == EMPTY) {
          continue;
        }
        int i = hash(oldKeys[j]) & mask;
        while (keys[i] != EMPTY) {
          i = (i + 1) & mask;
        }
        keys[i] = oldKeys[j];
        counts[i] = oldCounts[j];
        wordLists[i] = oldLists[j];
        wordListSizes[i] = oldSizes[j];
        pushedStamp[i] = oldPushed[j];
      }
    }

    private static int hash(long key) {
      long h = key * 0x9E3779B97F4A7C15L;
      return (int) (h ^ (h >>> 32));
    }
  }
}
