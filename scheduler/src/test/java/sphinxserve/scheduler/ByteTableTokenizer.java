package sphinxserve.scheduler;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import sphinxserve.api.TextTokenizer;

/**
 * Test input: a tokenizer over a fixed byte table. Ids 0–2 are special (BOS, EOS, PAD: no bytes), ids
 * 3–258 are the single bytes 0x00–0xFF (SentencePiece byte fallback), and any further pieces follow.
 */
final class ByteTableTokenizer implements TextTokenizer {

  static final int BOS = 0;
  static final int EOS = 1;
  static final int PAD = 2;
  static final int FIRST_BYTE = 3;

  private final List<byte[]> pieces = new ArrayList<>();

  /** A table of the special ids, the 256 byte ids, then {@code extraPieces} in order. */
  ByteTableTokenizer(String... extraPieces) {
    for (int i = 0; i < FIRST_BYTE; i++) pieces.add(new byte[0]);
    for (int b = 0; b < 256; b++) pieces.add(new byte[] {(byte) b});
    for (String p : extraPieces) pieces.add(p.getBytes(StandardCharsets.UTF_8));
  }

  /** Id of byte {@code b}. */
  static int byteId(int b) {
    return FIRST_BYTE + (b & 0xFF);
  }

  /** Id of the {@code i}th extra piece. */
  static int pieceId(int i) {
    return FIRST_BYTE + 256 + i;
  }

  @Override
  public int[] encode(String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    int[] ids = new int[bytes.length];
    for (int i = 0; i < bytes.length; i++) ids[i] = byteId(bytes[i]);
    return ids;
  }

  @Override
  public byte[] tokenBytes(int id) {
    return pieces.get(id).clone();
  }

  @Override
  public String decode(int[] ids) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int id : ids) out.writeBytes(pieces.get(id));
    return out.toString(StandardCharsets.UTF_8);
  }

  @Override
  public int vocabSize() {
    return pieces.size();
  }
}
