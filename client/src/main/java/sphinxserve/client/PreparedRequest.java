package sphinxserve.client;

import dev.sphinxserve.proto.v1.GenerateRequest;
import java.util.Optional;

/**
 * A generation request as first sent, and the same request carrying the image's bytes to send instead when the
 * node answers {@code NOT_FOUND} to the digest.
 *
 * @param request   what to send first
 * @param withBytes the fallback with the image's bytes, if the request names its image by digest and the bytes
 *                  are known
 * @param digest    the image's digest for the {@code x-image-digest} header, if the request has an image
 */
record PreparedRequest(GenerateRequest request, Optional<GenerateRequest> withBytes, Optional<String> digest) {
  /** A request as the caller built it: no fallback; the digest from its image. */
  static PreparedRequest of(GenerateRequest request) {
    return new PreparedRequest(request, Optional.empty(), ImageDigests.of(request));
  }
}
