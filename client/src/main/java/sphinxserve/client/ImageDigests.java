package sphinxserve.client;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Message;
import io.grpc.Metadata;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Optional;

/**
 * Image digests and the {@code x-image-digest} header. Every request that carries an image, as bytes or as a
 * digest, sends the header (lower-case hex SHA-256 of the bytes) so a proxy in front of a fleet can route requests
 * for one image to the node that holds it.
 */
final class ImageDigests {
  /** The metadata header naming the request's image. */
  static final Metadata.Key<String> HEADER = Metadata.Key.of("x-image-digest", Metadata.ASCII_STRING_MARSHALLER);

  private ImageDigests() {}

  static String sha256Hex(ByteString bytes) {
    try {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      sha.update(bytes.asReadOnlyByteBuffer());
      return HexFormat.of().formatHex(sha.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("every JDK has SHA-256", e);
    }
  }

  /** The digest of the request's image: hashed from its bytes, or the digest it names. */
  static Optional<String> of(GenerateRequest request) {
    for (Message m : request.getMessagesList()) {
      for (Content c : m.getContentList()) {
        switch (c.getKindCase()) {
          case IMAGE -> {
            return Optional.of(sha256Hex(c.getImage()));
          }
          case IMAGE_DIGEST -> {
            return Optional.of(c.getImageDigest());
          }
          default -> { }
        }
      }
    }
    return Optional.empty();
  }

  /** Headers carrying the digest, or none. */
  static Metadata headers(Optional<String> digest) {
    Metadata headers = new Metadata();
    digest.ifPresent(d -> headers.put(HEADER, d));
    return headers;
  }
}
