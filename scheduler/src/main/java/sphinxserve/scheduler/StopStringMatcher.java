package sphinxserve.scheduler;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;

/**
 * Finds stop strings in one request's streamed text and decides what may be sent: text that could still
 * turn out to begin a stop string is held back until it either completes one (then it is dropped) or
 * cannot (then it is released). Confined to the engine thread; one instance per request.
 */
final class StopStringMatcher {
  /*
   * An Aho–Corasick automaton over the stop strings' UTF-16 chars, run incrementally: its state after each
   * char is the longest suffix of the text so far that is a prefix of some stop string, so depth(state) is
   * exactly how many trailing chars must be held back. Every char costs amortised O(1) (goto/fail
   * transitions precomputed into a dense table over the stops' alphabet); no text is ever re-scanned.
   *
   * Which stop wins: the occurrence that ends first in the text; among those ending at the same char, the
   * longest (it starts earliest, so less text is sent). Everything before its start is released, the
   * rest is discarded and the matcher is finished. This rule depends only on the text, not on how it was
   * split into deltas.
   *
   * Invariant: pending holds exactly the text not yet released, and depth(state) <= pending.length(); a match
   * of length L ending at the newest char starts within pending (its first L - 1 chars were a held prefix).
   */

  /** What a {@link #push} or {@link #finish} releases. */
  record Result(String text, boolean stopped, String stop) {

    private static final Result EMPTY = new Result("", false, null);

    /** Text to send and no stop. */
    static Result text(String text) {
      return text.isEmpty() ? EMPTY : new Result(text, false, null);
    }
  }

  private static final int ROOT = 0;

  private final List<String> stops;
  private final char[] alphabet; // sorted distinct chars of the stops
  private final int[] next; // next[state * alphabet.length + symbol]
  private final int[] depth;
  private final int[] matchedStop; // index into stops of the longest stop ending at this state, or -1
  private final StringBuilder pending = new StringBuilder();
  private int state = ROOT;
  private boolean stopped;

  /** A matcher for {@code stops} (non-empty strings; duplicates allowed; none at all matches nothing). */
  StopStringMatcher(Collection<String> stops) {
    this.stops = List.copyOf(stops);
    for (String s : this.stops) {
      if (s.isEmpty()) throw new IllegalArgumentException("stop strings must not be empty");
    }
    this.alphabet = alphabet(this.stops);
    // Trie: child[state][symbol] or -1.
    int maxStates = 1 + this.stops.stream().mapToInt(String::length).sum();
    int sigma = alphabet.length;
    int[] child = new int[maxStates * Math.max(sigma, 1)];
    Arrays.fill(child, -1);
    int[] d = new int[maxStates];
    int[] out = new int[maxStates];
    Arrays.fill(out, -1);
    int numStates = 1;
    for (int k = 0; k < this.stops.size(); k++) {
      String s = this.stops.get(k);
      int t = ROOT;
      for (int i = 0; i < s.length(); i++) {
        int slot = t * sigma + symbol(s.charAt(i));
        if (child[slot] < 0) {
          d[numStates] = d[t] + 1;
          child[slot] = numStates++;
        }
        t = child[slot];
      }
      if (out[t] < 0) out[t] = k;
    }
    // Breadth-first: fail links folded into a complete transition table, outputs inherited along fail links.
    int[] fail = new int[numStates];
    this.next = new int[numStates * Math.max(sigma, 1)];
    ArrayDeque<Integer> queue = new ArrayDeque<>();
    for (int a = 0; a < sigma; a++) {
      int c = child[a];
      if (c < 0) {
        next[a] = ROOT;
      } else {
        next[a] = c;
        fail[c] = ROOT;
        queue.add(c);
      }
    }
    while (!queue.isEmpty()) {
      int t = queue.poll();
      if (out[t] < 0) out[t] = out[fail[t]]; // a shorter stop ending here (own stop, if any, is longer)
      for (int a = 0; a < sigma; a++) {
        int c = child[t * sigma + a];
        if (c < 0) {
          next[t * sigma + a] = next[fail[t] * sigma + a];
        } else {
          next[t * sigma + a] = c;
          fail[c] = next[fail[t] * sigma + a];
          queue.add(c);
        }
      }
    }
    this.depth = Arrays.copyOf(d, numStates);
    this.matchedStop = Arrays.copyOf(out, numStates);
  }

  private static char[] alphabet(List<String> stops) {
    StringBuilder all = new StringBuilder();
    stops.forEach(all::append);
    return all.chars().distinct().sorted().collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append)
        .toString().toCharArray();
  }

  private int symbol(char c) {
    return Arrays.binarySearch(alphabet, c);
  }

  /**
   * Feeds a text delta. Returns the text that is now safe to send; if a stop string completed, the text up
   * to its start with {@code stopped} set, after which the matcher ignores further input.
   */
  Result push(String delta) {
    if (stopped || delta.isEmpty()) return Result.EMPTY;
    int sigma = alphabet.length;
    for (int i = 0; i < delta.length(); i++) {
      char c = delta.charAt(i);
      pending.append(c);
      int a = sigma == 0 ? -1 : symbol(c);
      state = a < 0 ? ROOT : next[state * sigma + a];
      int k = matchedStop[state];
      if (k >= 0) {
        stopped = true;
        String text = pending.substring(0, pending.length() - stops.get(k).length());
        pending.setLength(0);
        return new Result(text, true, stops.get(k));
      }
    }
    int release = pending.length() - depth[state];
    if (release == 0) return Result.EMPTY;
    String text = pending.substring(0, release);
    pending.delete(0, release);
    return Result.text(text);
  }

  /** Ends the stream without a stop string: releases everything held back. */
  Result finish() {
    if (stopped) return Result.EMPTY;
    String text = pending.toString();
    pending.setLength(0);
    state = ROOT;
    return Result.text(text);
  }

  /** Whether a stop string matched. */
  boolean stopped() {
    return stopped;
  }

  /** Chars currently held back. */
  int numHeldBack() {
    return pending.length();
  }
}
