package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.scheduler.ByteTableTokenizer.byteId;
import static sphinxserve.scheduler.ByteTableTokenizer.pieceId;

import java.nio.ByteBuffer;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

class IncrementalDetokenizerTest {

  private final ByteTableTokenizer tokenizer = new ByteTableTokenizer("Hello", " wörld", "\uD83D\uDE00!");

  @Test
  void push_wholePieces_emitsThemAtOnce() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("Hello", d.push(pieceId(0)));
    assertEquals(" wörld", d.push(pieceId(1)));
    assertEquals("😀!", d.push(pieceId(2)));
    assertEquals("", d.finish());
  }

  @Test
  void push_emojiSplitIntoFourByteTokens_holdsBackUntilComplete() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("a", d.push(byteId('a')));
    assertEquals("", d.push(byteId(0xF0)));
    assertTrue(d.hasPending());
    assertEquals("", d.push(byteId(0x9F)));
    assertEquals("", d.push(byteId(0x98)));
    assertEquals("😀", d.push(byteId(0x80)));
    assertFalse(d.hasPending());
  }

  @Test
  void push_specialToken_emitsNothing() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("", d.push(ByteTableTokenizer.EOS));
    assertEquals("", d.push(byteId(0xC3)));
    assertEquals("", d.push(ByteTableTokenizer.PAD)); // a special token inside a character holds nothing up
    assertEquals("é", d.push(byteId(0xA9)));
  }

  @Test
  void push_byteThatCannotStartCharacter_replacedAtOnce() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("\uFFFD", d.push(byteId(0xFF)));
    assertEquals("\uFFFD", d.push(byteId(0x80)));
  }

  @Test
  void push_truncatedSequenceThenAscii_replacementThenAscii() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("", d.push(byteId(0xF0)));
    assertEquals("", d.push(byteId(0x9F)));
    assertEquals("\uFFFDa", d.push(byteId('a')));
  }

  @Test
  void push_surrogateEncoding_rejected() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("", d.push(byteId(0xED)));
    assertEquals("\uFFFD\uFFFD", d.push(byteId(0xA0))); // ED may not be followed by A0: both replaced
  }

  @Test
  void finish_incompleteSequence_emitsReplacement() {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    assertEquals("", d.push(byteId(0xE2)));
    assertEquals("", d.push(byteId(0x82)));
    assertEquals("\uFFFD", d.finish());
    assertEquals("", d.finish());
  }

  @Test
  void push_unicodeStandardExample_replacesMaximalSubparts() {
    // The Unicode Standard, chapter 3, table 3-8 (U+FFFD for maximal subparts), fed one byte per token.
    int[] bytes = {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64};
    assertEquals("a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd", decodeByteTokens(bytes));
  }

  @Test
  void push_randomCodePointsSplitIntoBytes_reassemblesExactly() {
    Random random = new Random(3);
    for (int trial = 0; trial < 500; trial++) {
      StringBuilder text = new StringBuilder();
      for (int i = 0; i < 12; i++) {
        int cp;
        do {
          cp = switch (random.nextInt(4)) {
            case 0 -> random.nextInt(0x80);
            case 1 -> 0x80 + random.nextInt(0x780);
            case 2 -> 0x800 + random.nextInt(0xF800);
            default -> 0x10000 + random.nextInt(0x100000);
          };
        } while (cp >= 0xD800 && cp <= 0xDFFF);
        text.appendCodePoint(cp);
      }
      byte[] utf8 = text.toString().getBytes(StandardCharsets.UTF_8);
      int[] bytes = new int[utf8.length];
      for (int i = 0; i < utf8.length; i++) bytes[i] = utf8[i] & 0xFF;
      assertEquals(text.toString(), decodeByteTokens(bytes));
    }
  }

  @Test
  void push_randomIllFormedBytes_matchJdkDecoderWhereItFollowsUnicode() throws Exception {
    // The JDK's decoder replaces a surrogate-looking "ED A0..BF" as one unit, where Unicode's maximal-subpart
    // practice (WHATWG, Python, this class) gives two U+FFFD; inputs with 0xED are left out of the comparison.
    Random random = new Random(7);
    var decoder = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
    for (int trial = 0; trial < 3000; trial++) {
      int[] bytes = new int[random.nextInt(24)];
      byte[] raw = new byte[bytes.length];
      for (int i = 0; i < bytes.length; i++) {
        do {
          bytes[i] = switch (random.nextInt(4)) {
            case 0 -> 0x20 + random.nextInt(0x5F);
            case 1 -> 0x80 + random.nextInt(0x40);
            case 2 -> 0xC0 + random.nextInt(0x40);
            default -> random.nextInt(256);
          };
        } while (bytes[i] == 0xED);
        raw[i] = (byte) bytes[i];
      }
      assertEquals(decoder.decode(ByteBuffer.wrap(raw)).toString(), decodeByteTokens(bytes),
          () -> java.util.HexFormat.of().formatHex(raw));
    }
  }

  /** Feeds one byte token per byte, checking that no delta ends inside a character; returns all text. */
  private String decodeByteTokens(int[] bytes) {
    IncrementalDetokenizer d = new IncrementalDetokenizer(tokenizer);
    StringBuilder out = new StringBuilder();
    for (int b : bytes) {
      String delta = d.push(byteId(b));
      if (!delta.isEmpty()) assertFalse(Character.isHighSurrogate(delta.charAt(delta.length() - 1)), "half a character");
      out.append(delta);
    }
    return out.append(d.finish()).toString();
  }
}
