package sphinxserve.server.image;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** SHA-256 digests of encoded images, lower-case hex: the image's identity everywhere in the node. */
public final class ImageDigest {

  /** Characters in a digest. */
  public static final int LENGTH = 64;

  private ImageDigest() {}

  /** The lower-case hex SHA-256 of {@code bytes}. */
  public static String of(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every JDK has SHA-256", e);
    }
  }

  /** Whether {@code digest} is 64 lower-case hex characters. */
  public static boolean isWellFormed(String digest) {
    if (digest.length() != LENGTH) return false;
    for (int i = 0; i < LENGTH; i++) {
      char c = digest.charAt(i);
      if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f')) return false;
    }
    return true;
  }
}
