package sphinxserve.kvcache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class BlockHasherTest {

  private final BlockHasher hasher = new BlockHasher(4);
  private final int[] tokens = {1, 9, 9, 9, 9, 9, 9, 2};

  private static PrefixKey image(String digest, int start, int end) {
    return PrefixKey.of("b", null, List.of(new ImageSpan(digest, start, end)));
  }

  @Test
  void hash_sameInputs_equalAndFullLength() {
    PrefixKey key = PrefixKey.of("b");
    BlockHash a = hasher.hash(key.rootHash(), key, tokens, 1);
    BlockHash b = new BlockHasher(4).hash(PrefixKey.of("b").rootHash(), key, tokens.clone(), 1);
    assertEquals(a, b);
    assertEquals(a.hashCode(), b.hashCode());
    assertEquals(BlockHash.BYTES, a.toBytes().length);
    assertEquals(64, a.toString().length());
  }

  @Test
  void hash_differentImagesSamePlaceholderIds_differ() {
    PrefixKey a = image("digest-a", 1, 7);
    PrefixKey b = image("digest-b", 1, 7);
    assertNotEquals(hasher.hash(a.rootHash(), a, tokens, 0), hasher.hash(b.rootHash(), b, tokens, 0));
    assertNotEquals(hasher.hash(a.rootHash(), a, tokens, 1), hasher.hash(b.rootHash(), b, tokens, 1));
  }

  @Test
  void hash_sameImageAtOtherOffset_differs() {
    PrefixKey a = image("digest-a", 1, 7);
    PrefixKey b = image("digest-a", 2, 8);
    assertNotEquals(hasher.hash(a.rootHash(), a, tokens, 1), hasher.hash(b.rootHash(), b, tokens, 1));
  }

  @Test
  void hash_blockAfterImage_dependsOnImageThroughParent() {
    PrefixKey a = image("digest-a", 0, 4);
    PrefixKey b = image("digest-b", 0, 4);
    BlockHash parentA = hasher.hash(a.rootHash(), a, tokens, 0);
    BlockHash parentB = hasher.hash(b.rootHash(), b, tokens, 0);
    // Block 1 has no image positions: equal under equal parents, different under the two images' parents.
    assertEquals(hasher.hash(parentA, a, tokens, 1), hasher.hash(parentA, b, tokens, 1));
    assertNotEquals(hasher.hash(parentA, a, tokens, 1), hasher.hash(parentB, b, tokens, 1));
  }

  @Test
  void rootHash_coversBundleAndSalt() {
    assertNotEquals(PrefixKey.of("b").rootHash(), PrefixKey.of("c").rootHash());
    assertNotEquals(PrefixKey.of("b").rootHash(), PrefixKey.of("b", "tenant", List.of()).rootHash());
    assertNotEquals(PrefixKey.of("b", "", List.of()).rootHash(), PrefixKey.of("b").rootHash());
    assertEquals(PrefixKey.of("b", "t", List.of()), PrefixKey.of("b", "t", List.of()));
  }

  @Test
  void prefixKey_overlappingSpans_throws() {
    assertThrows(IllegalArgumentException.class,
        () -> PrefixKey.of("b", null, List.of(new ImageSpan("x", 0, 5), new ImageSpan("y", 4, 8))));
    assertThrows(IllegalArgumentException.class, () -> new ImageSpan("x", 3, 3));
  }
}
