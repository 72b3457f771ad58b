package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class TextOffsetsTest {

  @Test
  void next_wholeCharacters_offsetsAreTheTextsUtf16Positions() {
    TextOffsets offsets = new TextOffsets(0);
    String[] tokens = {"def", " fib", "(é", "😀", ")"};
    int expected = 0;
    for (String token : tokens) {
      assertEquals(expected, offsets.next(token.getBytes(StandardCharsets.UTF_8)), token);
      expected += token.length(); // the emoji takes two UTF-16 units
    }
  }

  @Test
  void next_characterSplitOverTokens_laterPiecesSitAtTheCharacter_thenTheTextContinues() {
    byte[] emoji = "😀".getBytes(StandardCharsets.UTF_8); // 4 bytes, 2 UTF-16 units
    TextOffsets offsets = new TextOffsets(3); // after an echoed "abc"
    assertEquals(3, offsets.next(Arrays.copyOfRange(emoji, 0, 2)));
    assertEquals(3, offsets.next(Arrays.copyOfRange(emoji, 2, 4)));
    assertEquals(5, offsets.next("x".getBytes(StandardCharsets.UTF_8)));
    assertEquals(6, offsets.next(new byte[0])); // a special token has no text
    assertEquals(6, offsets.next("y".getBytes(StandardCharsets.UTF_8)));
  }

  @Test
  void next_brokenSequences_countAsOneReplacementCharacterEach() {
    TextOffsets offsets = new TextOffsets(0);
    assertEquals(0, offsets.next(new byte[] {(byte) 0xE2, (byte) 0x82})); // cut short by the next lead byte
    assertEquals(0, offsets.next(new byte[] {'a'}));
    assertEquals(2, offsets.next(new byte[] {(byte) 0x80})); // stray continuation
    assertEquals(3, offsets.next(new byte[] {'b'}));
  }

  @Test
  void completionToken_wholeCharactersAsText_piecesInOpenAisBytesForm() {
    assertEquals(" fib", OpenAiResponses.completionToken(" fib".getBytes(StandardCharsets.UTF_8)));
    assertEquals("bytes:\\xe2\\x82", OpenAiResponses.completionToken(new byte[] {(byte) 0xE2, (byte) 0x82}));
    assertEquals("", OpenAiResponses.completionToken(new byte[0]));
  }
}
