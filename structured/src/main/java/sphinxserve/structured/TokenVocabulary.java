package sphinxserve.structured;

import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import sphinxserve.api.TextTokenizer;

/**
 * A tokenizer's vocabulary as bytes, indexed for masks: every token's bytes ({@link TextTokenizer#tokenBytes}:
 * byte-level BPE and SentencePiece byte-fallback tokens as the bytes they stand for), the EOS ids, and a byte
 * trie over the tokens that have bytes. Immutable and thread-safe; build one per model and share it across
 * compiled grammars.
 */
public final class TokenVocabulary {
  /*
   * The trie is stored in preorder, as arrays over nodes (the root is implicit, depth 0):
   *   label[i]      the byte on the edge into node i;
   *   depth[i]      its depth (1 for the first byte of a token);
   *   subtreeEnd[i] the first node after i's subtree, so a walk that rejects node i skips to it;
   *   tokens ending at node i: sortedIds[tokenFrom[i] .. tokenTo[i]) (ids sorted by their bytes, so tokens with
   *   the same bytes, e.g. "A" and the byte-fallback <0x41>, sit together).
   * A mask is one preorder walk carrying the matcher state per depth (CompiledGrammar.computeMask). Special
   * tokens (no bytes) are not in the trie: never allowed; EOS ids are allowed separately, exactly when the
   * output is complete.
   */

  private final int size;
  private final byte[][] bytes;
  private final int[] eosIds;
  final byte[] label;
  final int[] depth;
  final int[] subtreeEnd;
  final int[] tokenFrom;
  final int[] tokenTo;
  final int[] sortedIds;
  final int maxDepth;

  private TokenVocabulary(byte[][] bytes, int[] eosIds) {
    this.size = bytes.length;
    this.bytes = bytes;
    this.eosIds = eosIds;
    boolean[] isEos = new boolean[size];
    for (int id : eosIds) isEos[id] = true;
    Integer[] order = new Integer[size];
    int numTokens = 0;
    for (int id = 0; id < size; id++) {
      if (bytes[id].length > 0 && !isEos[id]) order[numTokens++] = id;
    }
    Arrays.sort(order, 0, numTokens, (a, b) -> Arrays.compareUnsigned(bytes[a], bytes[b]));
    sortedIds = new int[numTokens];
    int capacity = 16;
    byte[] labels = new byte[capacity];
    int[] depths = new int[capacity];
    int[] from = new int[capacity];
    int[] to = new int[capacity];
    int numNodes = 0;
    int longest = 0;
    byte[] previous = new byte[0];
    for (int k = 0; k < numTokens; k++) {
      int id = order[k];
      sortedIds[k] = id;
      byte[] b = bytes[id];
      longest = Math.max(longest, b.length);
      int common = Arrays.mismatch(previous, b);
      if (common < 0) { // same bytes as the previous token: it ends at the same node
        to[numNodes - 1] = k + 1;
        continue;
      }
      for (int d = common; d < b.length; d++) {
        if (numNodes == capacity) {
          capacity *= 2;
          labels = Arrays.copyOf(labels, capacity);
          depths = Arrays.copyOf(depths, capacity);
          from = Arrays.copyOf(from, capacity);
          to = Arrays.copyOf(to, capacity);
        }
        labels[numNodes] = b[d];
        depths[numNodes] = d + 1;
        from[numNodes] = k;
        to[numNodes] = k;
        numNodes++;
      }
      to[numNodes - 1] = k + 1;
      previous = b;
    }
    label = Arrays.copyOf(labels, numNodes);
    depth = Arrays.copyOf(depths, numNodes);
    tokenFrom = Arrays.copyOf(from, numNodes);
    tokenTo = Arrays.copyOf(to, numNodes);
    subtreeEnd = new int[numNodes];
    int[] open = new int[longest + 1];
    int numOpen = 0;
    for (int i = 0; i < numNodes; i++) {
      while (numOpen > 0 && depth[open[numOpen - 1]] >= depth[i]) subtreeEnd[open[--numOpen]] = i;
      open[numOpen++] = i;
    }
    while (numOpen > 0) subtreeEnd[open[--numOpen]] = numNodes;
    maxDepth = longest;
  }

  /**
   * The vocabulary of {@code tokenizer}: ids {@code 0 .. vocabSize()-1} with their {@code tokenBytes}.
   *
   * @param eosIds the ids that end the output (allowed exactly where the output is complete)
   * @throws IllegalArgumentException when an EOS id is outside the vocabulary
   */
  public static TokenVocabulary of(TextTokenizer tokenizer, Collection<Integer> eosIds) {
    Objects.requireNonNull(tokenizer, "tokenizer");
    byte[][] bytes = new byte[tokenizer.vocabSize()][];
    for (int id = 0; id < bytes.length; id++) {
      byte[] b = tokenizer.tokenBytes(id);
      bytes[id] = b == null ? new byte[0] : b.clone();
    }
    return new TokenVocabulary(bytes, checkEos(eosIds, bytes.length));
  }

  /** A vocabulary given as each id's bytes (empty for special tokens), for tools and benchmarks. */
  public static TokenVocabulary of(List<byte[]> tokenBytes, Collection<Integer> eosIds) {
    byte[][] bytes = new byte[tokenBytes.size()][];
    for (int id = 0; id < bytes.length; id++) bytes[id] = Objects.requireNonNull(tokenBytes.get(id), "tokenBytes[" + id + "]").clone();
    return new TokenVocabulary(bytes, checkEos(eosIds, bytes.length));
  }

  private static int[] checkEos(Collection<Integer> eosIds, int size) {
    Objects.requireNonNull(eosIds, "eosIds");
    int[] ids = eosIds.stream().mapToInt(Integer::intValue).distinct().toArray();
    for (int id : ids) {
      if (id < 0 || id >= size) throw new IllegalArgumentException("eos id " + id + " outside the vocabulary [0, " + size + ")");
    }
    return ids;
  }

  /** Number of ids, special tokens included. */
  public int size() {
    return size;
  }

  /** Words of a mask over this vocabulary: {@code ceil(size / 64)}. */
  public int numWords() {
    return (size + 63) >>> 6;
  }

  /** The EOS ids. */
  public int[] eosIds() {
    return eosIds.clone();
  }

  /** Whether {@code id} is an EOS id. */
  public boolean isEos(int id) {
    for (int e : eosIds) {
      if (e == id) return true;
    }
    return false;
  }

  /** The bytes of token {@code id} (empty for special tokens); a copy. */
  public byte[] tokenBytes(int id) {
    return bytes[id].clone();
  }

  /** The bytes of token {@code id}, not copied: callers must not modify them. */
  byte[] bytesOf(int id) {
    return bytes[id];
  }

  /** Nodes of the byte trie. */
  int numTrieNodes() {
    return label.length;
  }

  int[] eosIdsShared() {
    return eosIds;
  }
}
