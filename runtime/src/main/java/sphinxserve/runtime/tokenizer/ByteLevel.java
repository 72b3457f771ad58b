package sphinxserve.runtime.tokenizer;

import java.util.regex.Pattern;

/** GPT-2 byte-level alphabet and pre-tokenisation, as Hugging Face's {@code ByteLevel} pre-tokenizer does them. */
final class ByteLevel {
  /*
   * bytes_to_unicode (GPT-2, encoder.py): the 188 bytes that are printable Latin-1 ('!'..'~', '¡'..'¬',
   * '®'..'ÿ') stand for themselves; the other 68 (controls, space, DEL, NBSP, soft hyphen) map, in byte
   * order, to U+0100, U+0101, ... so every byte is one visible, non-whitespace char. A token string is then
   * the sequence of its bytes' chars, and a space shows up as 'Ġ' (U+0120).
   */

  /** Number of distinct bytes, the size of the base alphabet. */
  static final int NUM_BYTES = 256;

  /** The pre-tokenisation split of GPT-2 (and HF ByteLevel with {@code use_regex=true}). */
  static final Pattern SPLIT = Pattern.compile(
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      Pattern.UNICODE_CHARACTER_CLASS);

  private static final char[] BYTE_TO_CHAR = new char[NUM_BYTES];
  /** Inverse of {@link #BYTE_TO_CHAR}; -1 for chars outside the alphabet. */
  private static final short[] CHAR_TO_BYTE = new short[NUM_BYTES + 68];

  static {
    java.util.Arrays.fill(CHAR_TO_BYTE, (short) -1);
    int next = NUM_BYTES;
    for (int b = 0; b < NUM_BYTES; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char c = printable ? (char) b : (char) next++;
      BYTE_TO_CHAR[b] = c;
      CHAR_TO_BYTE[c] = (short) b;
    }
  }

  private ByteLevel() {}

  /** The alphabet char that stands for byte {@code b} (0..255). */
  static char charOf(int b) {
    return BYTE_TO_CHAR[b & 0xFF];
  }

  /** The byte that alphabet char {@code c} stands for, or -1 when {@code c} is not in the alphabet. */
  static int byteOf(char c) {
    return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
  }

  /** The byte-level string of {@code bytes}: one alphabet char per byte. */
  static String encode(byte[] bytes) {
    char[] chars = new char[bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      chars[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
    }
    return new String(chars);
  }

  /** The bytes of a byte-level token string, or null when a char is outside the alphabet. */
  static byte[] decode(String token) {
    byte[] bytes = new byte[token.length()];
    for (int i = 0; i < bytes.length; i++) {
      int b = byteOf(token.charAt(i));
      if (b < 0) {
        return null;
      }
      bytes[i] = (byte) b;
    }
    return bytes;
  }
}
