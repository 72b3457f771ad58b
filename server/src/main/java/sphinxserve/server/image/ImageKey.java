package sphinxserve.server.image;

/**
 * The image cache's key: embeddings depend on the weights (the bundle) and the image bytes (the digest).
 *
 * @param bundleId the served bundle's id
 * @param digest SHA-256 of the encoded image, lower-case hex
 */
record ImageKey(String bundleId, String digest) {}
