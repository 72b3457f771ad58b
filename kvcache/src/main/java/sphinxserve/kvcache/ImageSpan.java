package sphinxserve.kvcache;

import java.util.Objects;

/**
 * An image's placeholder positions in a prompt: token positions {@code [start, end)} are filled with the
 * embeddings of the image whose digest is {@code digest} (lower-case hex SHA-256 of its bytes, DESIGN.md).
 *
 * <p>Every block overlapping these positions has the digest in its hash, so two images whose placeholder token
 * ids are identical never share a block.
 *
 * @param digest the image's digest; any non-empty string, hashed as UTF-8
 * @param start first placeholder position (inclusive)
 * @param end last placeholder position (exclusive)
 */
public record ImageSpan(String digest, int start, int end) {

  public ImageSpan {
    Objects.requireNonNull(digest, "digest");
    if (digest.isEmpty()) throw new IllegalArgumentException("image span: empty digest");
    if (start < 0 || end <= start) throw new IllegalArgumentException("image span: need 0 <= start < end, got [" + start + ", " + end + ")");
  }

  /** Whether the span shares a position with {@code [from, to)}. */
  boolean overlaps(int from, int to) {
    return start < to && from < end;
  }
}
