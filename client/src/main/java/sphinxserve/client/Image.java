package sphinxserve.client;

import com.google.protobuf.ByteString;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

/** Encoded image bytes (JPEG, PNG, …) and their SHA-256 digest, the name the node's image cache knows them by. */
public final class Image {
  private final ByteString bytes;
  private final String digest;

  private Image(ByteString bytes) {
    this.bytes = bytes;
    this.digest = ImageDigests.sha256Hex(bytes);
  }

  /** An image from its encoded bytes (copied). */
  public static Image of(byte[] bytes) {
    return new Image(ByteString.copyFrom(Objects.requireNonNull(bytes, "bytes")));
  }

  /** An image from its encoded bytes. */
  public static Image of(ByteString bytes) {
    return new Image(Objects.requireNonNull(bytes, "bytes"));
  }

  /** Reads an image file's bytes; the node decodes them. */
  public static Image read(Path path) throws IOException {
    return new Image(ByteString.copyFrom(Files.readAllBytes(path)));
  }

  /** The encoded bytes. */
  public ByteString bytes() {
    return bytes;
  }

  /** SHA-256 of the bytes, lower-case hex: the {@code image_digest} and {@code x-image-digest} value. */
  public String digest() {
    return digest;
  }

  @Override
  public String toString() {
    return "Image[" + bytes.size() + " bytes, sha256 " + digest + "]";
  }
}
