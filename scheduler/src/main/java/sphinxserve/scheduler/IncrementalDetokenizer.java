package sphinxserve.scheduler;

import sphinxserve.api.TextTokenizer;

/**
 * Turns one request's generated token ids, fed one at a time, into text deltas that never end inside a
 * character. Confined to the engine thread; one instance per request.
 */
final class IncrementalDetokenizer {
  /*
   * Tokens are byte pieces (TextTokenizer.tokenBytes); a multi-byte UTF-8 character may be split across
   * tokens (byte-fallback tokens <0xF0> <0x9F> <0x98> <0x80> for one emoji). The bytes run through the
   * WHATWG / Unicode "maximal subpart" UTF-8 decoder as a streaming state machine, whose whole state is the
   * partial code point, the continuation bytes still needed and the allowed range of the next one; a
   * character is emitted when its last byte arrives, so an incomplete sequence is held back simply by
   * staying in the state. Ill-formed input becomes U+FFFD as soon as it is clearly ill-formed (a byte that
   * cannot start a character; a lead byte followed by a byte outside its allowed range, which is then
   * re-read as a new start: overlongs, surrogates and code points above U+10FFFF are rejected this way) and,
   * at finish(), for a sequence left incomplete. The concatenation of every delta is the whole output decoded
   * at once, however it was split into tokens; it matches Python's and browsers' decoders (java.nio's
   * differs only in replacing "ED A0..BF" as one unit instead of two).
   */

  private static final int REPLACEMENT = 0xFFFD;

  private final TextTokenizer tokenizer;
  private final StringBuilder out = new StringBuilder();
  private int codePoint;
  private int bytesNeeded;
  private int bytesSeen;
  private int lower = 0x80;
  private int upper = 0xBF;

  /** A detokenizer for one request's output over {@code tokenizer}'s byte pieces. */
  IncrementalDetokenizer(TextTokenizer tokenizer) {
    this.tokenizer = tokenizer;
  }

  /** Feeds one generated token; returns the text it completes (possibly empty). */
  String push(int tokenId) {
    for (byte b : tokenizer.tokenBytes(tokenId)) accept(b & 0xFF);
    return drain();
  }

  /** Ends the output: an incomplete trailing sequence becomes U+FFFD; returns the text that releases. */
  String finish() {
    if (bytesNeeded != 0) {
      reset();
      out.appendCodePoint(REPLACEMENT);
    }
    return drain();
  }

  /** Whether bytes of an incomplete character are being held back. */
  boolean hasPending() {
    return bytesNeeded != 0;
  }

  private void accept(int b) {
    if (bytesNeeded == 0) {
      if (b <= 0x7F) {
        out.append((char) b);
      } else if (b >= 0xC2 && b <= 0xDF) {
        start(1, b & 0x1F);
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower = 0xA0; // overlong
        if (b == 0xED) upper = 0x9F; // surrogates
        start(2, b & 0x0F);
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower = 0x90; // overlong
        if (b == 0xF4) upper = 0x8F; // above U+10FFFF
        start(3, b & 0x07);
      } else {
        out.appendCodePoint(REPLACEMENT);
      }
      return;
    }
    if (b < lower || b > upper) {
      reset();
      out.appendCodePoint(REPLACEMENT);
      accept(b); // the offending byte may start a new character
      return;
    }
    lower = 0x80;
    upper = 0xBF;
    codePoint = (codePoint << 6) | (b & 0x3F);
    if (++bytesSeen == bytesNeeded) {
      out.appendCodePoint(codePoint);
      reset();
    }
  }

  private void start(int needed, int bits) {
    bytesNeeded = needed;
    bytesSeen = 0;
    codePoint = bits;
  }

  private void reset() {
    codePoint = 0;
    bytesNeeded = 0;
    bytesSeen = 0;
    lower = 0x80;
    upper = 0xBF;
  }

  private String drain() {
    if (out.isEmpty()) return "";
    String s = out.toString();
    out.setLength(0);
    return s;
  }
}
