package sphinxserve.server.http;

/**
 * The {@code text_offset} of each token of a completion: the character (UTF-16 unit, as the text's JSON string counts
 * them) at which the token's text starts in the choice's text, fed the tokens' UTF-8 bytes in order. A token that
 * starts inside a character another token began (byte-level BPE splits characters) gets the offset of the character
 * it completes, as an incremental detokenizer places it. Not thread-safe: one per choice.
 */
final class TextOffsets {

  private int numChars;
  /** Continuation bytes the current character still needs; 0 between characters. */
  private int numPending;
  /** UTF-16 units of the current character once complete (2 for a 4-byte sequence). */
  private int width;

  /** Offsets in a text that starts with {@code numChars} characters already (an echoed prompt). */
  TextOffsets(int numChars) {
    this.numChars = numChars;
  }

  /** The offset of a token with {@code bytes} (its UTF-8 bytes; empty for a special token), then moves past it. */
  int next(byte[] bytes) {
    int at = numChars;
    for (byte b : bytes) feed(b);
    return at;
  }

  private void feed(byte b) {
    if (numPending > 0) {
      if ((b & 0xC0) == 0x80) {
        if (--numPending == 0) numChars += width;
        return;
      }
      numChars++; // a character cut short decodes to one U+FFFD
      numPending = 0;
    }
    if ((b & 0x80) == 0) {
      numChars++;
    } else if ((b & 0xE0) == 0xC0) {
      start(1, 1);
    } else if ((b & 0xF0) == 0xE0) {
      start(2, 1);
    } else if ((b & 0xF8) == 0xF0) {
      start(3, 2);
    } else {
      numChars++; // a stray continuation byte or an invalid lead decodes to one U+FFFD
    }
  }

  private void start(int numContinuations, int numUnits) {
    numPending = numContinuations;
    width = numUnits;
  }
}
