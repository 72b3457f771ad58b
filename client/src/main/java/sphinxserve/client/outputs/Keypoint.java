package sphinxserve.client.outputs;

import java.util.Objects;

/**
 * One COCO body keypoint found in an answer.
 *
 * @param part  which of the 17 COCO keypoints
 * @param point where, normalised to the padded square
 */
public record Keypoint(CocoKeypoint part, Point point) {
  /** Checks the components. */
  public Keypoint {
    Objects.requireNonNull(part, "part");
    Objects.requireNonNull(point, "point");
  }

  /** The keypoint's key in {@code left_eye} style, as in the COCO annotations. */
  public String name() {
    return part.key();
  }
}
