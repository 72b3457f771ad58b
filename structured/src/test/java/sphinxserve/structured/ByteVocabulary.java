package sphinxserve.structured;

import java.util.ArrayList;
import java.util.List;

/** Test vocabularies built from byte strings. */
final class ByteVocabulary {
  private ByteVocabulary() {}

  /** 256 single-byte tokens (id = byte value) and EOS id 256. */
  static TokenVocabulary bytes() {
    List<byte[]> tokens = new ArrayList<>();
    for (int b = 0; b < 256; b++) tokens.add(new byte[] {(byte) b});
    tokens.add(new byte[0]);
    return TokenVocabulary.of(tokens, List.of(256));
  }
}
