package sphinxserve.server.image;

import sphinxserve.api.ImageEmbeddings;

/**
 * What the image cache holds per image: the vision encoder's output and the decoded size (for PutImage).
 *
 * @param embeddings all views' embeddings; {@code embeddings.digest()} is the image's digest
 * @param width decoded width in pixels, after EXIF orientation
 * @param height decoded height in pixels, after EXIF orientation
 */
public record EncodedImage(ImageEmbeddings embeddings, int width, int height) {

  /** The SHA-256 of the encoded bytes, lower-case hex. */
  public String digest() {
    return embeddings.digest();
  }

  /** Bytes held, for cache weighing (the embeddings dominate). */
  long sizeBytes() {
    return embeddings.sizeBytes() + 64;
  }
}
