package sphinxserve.structured;

import java.util.Arrays;

/** Source text with its line starts, so that a char offset turns into a 1-based line and column for errors. */
final class SourceText {
  private final String text;
  private int[] lineStarts;

  SourceText(String text) {
    this.text = text;
  }

  String text() {
    return text;
  }

  /** 1-based line of {@code offset}. */
  int line(int offset) {
    int i = Arrays.binarySearch(lineStarts(), offset);
    return i >= 0 ? i + 1 : -i - 1;
  }

  /** 1-based column (UTF-16 units) of {@code offset}. */
  int column(int offset) {
    return offset - lineStarts()[line(offset) - 1] + 1;
  }

  /** A {@link GrammarException} at {@code offset}. */
  GrammarException error(String message, int offset) {
    return new GrammarException(message, line(offset), column(offset));
  }

  private int[] lineStarts() {
    if (lineStarts == null) {
      int[] starts = new int[16];
      int n = 0;
      starts[n++] = 0;
      for (int i = 0; i < text.length(); i++) {
        if (text.charAt(i) == '\n') {
          if (n == starts.length) starts = Arrays.copyOf(starts, n * 2);
          starts[n++] = i + 1;
        }
      }
      lineStarts = Arrays.copyOf(starts, n);
    }
    return lineStarts;
  }
}
