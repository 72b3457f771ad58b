package sphinxserve.server.image;

/**
 * The image cache's key: embeddings depend on the weights (the bundle) and the image bytes (the digest).
 *
 * @param bundleId the served bundle's id
 * @param scope the tenant the entry belongs to ({@link ImageCache#SHARED} when tenants share the cache): a
 *     tenant's lookups never see another tenant's images, so a digest cannot reveal what others sent
 * @param digest SHA-256 of the encoded image, lower-case hex
 */
record ImageKey(String bundleId, String scope, String digest) {}
