package sphinxserve.kvcache;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * Everything besides token ids that decides whether two prompts' KV may be shared: the bundle (model) id, an
 * optional tenant salt, and the prompt's image spans. Immutable and safe to build on any thread.
 */
public final class PrefixKey {
  /*
   * The bundle id and salt enter once, through the root: the first block's parent hash is
   * SHA-256(domain tag, bundle id, salt). Since every block hash chains its parent, each block's hash covers them
   * as if they were extra keys of every block, at no per-block cost. Image digests are per-block extra keys
   * (BlockHasher), because only the blocks that cover image positions must depend on the image.
   */

  private static final byte[] DOMAIN = "sphinx-serve/kv-prefix/v1".getBytes(StandardCharsets.UTF_8);

  private final String bundleId;
  private final String tenantSalt;
  private final List<ImageSpan> imageSpans;
  private final byte[][] imageDigestBytes;
  private final BlockHash rootHash;

  private PrefixKey(String bundleId, String tenantSalt, List<ImageSpan> imageSpans) {
    this.bundleId = Objects.requireNonNull(bundleId, "bundleId");
    this.tenantSalt = tenantSalt;
    List<ImageSpan> sorted = new ArrayList<>(imageSpans);
    sorted.sort(Comparator.comparingInt(ImageSpan::start));
    for (int i = 1; i < sorted.size(); i++) {
      if (sorted.get(i).start() < sorted.get(i - 1).end()) {
        throw new IllegalArgumentException("prefix key: image spans overlap: " + sorted.get(i - 1) + " and " + sorted.get(i));
      }
    }
    this.imageSpans = List.copyOf(sorted);
    this.imageDigestBytes = new byte[sorted.size()][];
    for (int i = 0; i < sorted.size(); i++) {
      imageDigestBytes[i] = sorted.get(i).digest().getBytes(StandardCharsets.UTF_8);
    }
    this.rootHash = computeRoot(bundleId, tenantSalt);
  }

  /** A key for text-only prompts of bundle {@code bundleId}, no tenant salt. */
  public static PrefixKey of(String bundleId) {
    return new PrefixKey(bundleId, null, List.of());
  }

  /** A key for bundle {@code bundleId}, an optional tenant salt ({@code null} for none) and image spans. */
  public static PrefixKey of(String bundleId, String tenantSalt, List<ImageSpan> imageSpans) {
    return new PrefixKey(bundleId, tenantSalt, imageSpans);
  }

  /** The bundle id. */
  public String bundleId() {
    return bundleId;
  }

  /** The tenant salt, if any. */
  public Optional<String> tenantSalt() {
    return Optional.ofNullable(tenantSalt);
  }

  /** The image spans, sorted by start, non-overlapping. */
  public List<ImageSpan> imageSpans() {
    return imageSpans;
  }

  /** The parent hash of block 0. */
  BlockHash rootHash() {
    return rootHash;
  }

  /** UTF-8 bytes of image span {@code i}'s digest. */
  byte[] imageDigestBytes(int i) {
    return imageDigestBytes[i];
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PrefixKey k && k.bundleId.equals(bundleId) && Objects.equals(k.tenantSalt, tenantSalt) && k.imageSpans.equals(imageSpans);
  }

  @Override
  public int hashCode() {
    return Objects.hash(bundleId, tenantSalt, imageSpans);
  }

  @Override
  public String toString() {
    return "PrefixKey[bundle=" + bundleId + (tenantSalt == null ? "" : ", salted") + ", images=" + imageSpans + "]";
  }

  private static BlockHash computeRoot(String bundleId, String tenantSalt) {
    MessageDigest sha = sha256();
    sha.update(DOMAIN);
    updateLengthPrefixed(sha, bundleId.getBytes(StandardCharsets.UTF_8));
    if (tenantSalt == null) {
      sha.update((byte) 0);
    } else {
      sha.update((byte) 1);
      updateLengthPrefixed(sha, tenantSalt.getBytes(StandardCharsets.UTF_8));
    }
    return BlockHash.of(sha.digest(), 0);
  }

  private static void updateLengthPrefixed(MessageDigest sha, byte[] bytes) {
    int n = bytes.length;
    sha.update(new byte[] {(byte) (n >>> 24), (byte) (n >>> 16), (byte) (n >>> 8), (byte) n});
    sha.update(bytes);
  }

  /** A fresh SHA-256 digest; every JDK has one. */
  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("SHA-256 is required of every JDK", e);
    }
  }
}
