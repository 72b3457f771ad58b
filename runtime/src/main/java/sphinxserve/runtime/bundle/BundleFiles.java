package sphinxserve.runtime.bundle;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;

/** File names of a bundle and the hashing shared by the builder and the loader. */
public final class BundleFiles {

  /** The manifest. */
  public static final String MANIFEST = "bundle.json";
  /** The decoder graph. */
  public static final String DECODER = "decoder.onnx";
  /** The decoder's weights beside it (ONNX external data), for bundles built from checkpoints. */
  public static final String DECODER_DATA = "decoder.onnx.data";
  /** The vision graph. */
  public static final String VISION = "vision.onnx";
  /** The Hugging Face tokenizer. */
  public static final String TOKENIZER = "tokenizer.json";

  private BundleFiles() {}

  /** SHA-256 of a file, lower-case hex. */
  public static String sha256(Path file) throws IOException {
    MessageDigest digest = newSha256();
    try (InputStream in = Files.newInputStream(file)) {
      byte[] buffer = new byte[1 << 20];
      for (int n; (n = in.read(buffer)) > 0; ) digest.update(buffer, 0, n);
    }
    return HexFormat.of().formatHex(digest.digest());
  }

  /** The bundle id: SHA-256 over the sorted {@code name=sha256} lines of the bundle's files. */
  public static String bundleId(Map<String, String> fileHashes) {
    MessageDigest digest = newSha256();
    new TreeMap<>(fileHashes).forEach((name, hash) -> digest.update((name + "=" + hash + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    return HexFormat.of().formatHex(digest.digest());
  }

  static MessageDigest newSha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("every JDK has SHA-256", e);
    }
  }
}
