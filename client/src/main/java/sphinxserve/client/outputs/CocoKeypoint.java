package sphinxserve.client.outputs;

import java.util.List;
import java.util.Locale;
import java.util.Optional;

/** The 17 COCO person keypoints, in COCO's order, and the skeleton that joins them. */
public enum CocoKeypoint {
  /** Nose. */
  NOSE,
  /** Left eye. */
  LEFT_EYE,
  /** Right eye. */
  RIGHT_EYE,
  /** Left ear. */
  LEFT_EAR,
  /** Right ear. */
  RIGHT_EAR,
  /** Left shoulder. */
  LEFT_SHOULDER,
  /** Right shoulder. */
  RIGHT_SHOULDER,
  /** Left elbow. */
  LEFT_ELBOW,
  /** Right elbow. */
  RIGHT_ELBOW,
  /** Left wrist. */
  LEFT_WRIST,
  /** Right wrist. */
  RIGHT_WRIST,
  /** Left hip. */
  LEFT_HIP,
  /** Right hip. */
  RIGHT_HIP,
  /** Left knee. */
  LEFT_KNEE,
  /** Right knee. */
  RIGHT_KNEE,
  /** Left ankle. */
  LEFT_ANKLE,
  /** Right ankle. */
  RIGHT_ANKLE;

  /**
   * A limb of the skeleton: a line from one keypoint to another.
   *
   * @param from one end
   * @param to   the other end
   */
  public record Limb(CocoKeypoint from, CocoKeypoint to) {}

  /** The COCO person skeleton (the 19 limbs of the COCO annotations' {@code skeleton} field). */
  public static final List<Limb> SKELETON = List.of(
      new Limb(LEFT_ANKLE, LEFT_KNEE), new Limb(LEFT_KNEE, LEFT_HIP),
      new Limb(RIGHT_ANKLE, RIGHT_KNEE), new Limb(RIGHT_KNEE, RIGHT_HIP),
      new Limb(LEFT_HIP, RIGHT_HIP), new Limb(LEFT_SHOULDER, LEFT_HIP), new Limb(RIGHT_SHOULDER, RIGHT_HIP),
      new Limb(LEFT_SHOULDER, RIGHT_SHOULDER), new Limb(LEFT_SHOULDER, LEFT_ELBOW),
      new Limb(RIGHT_SHOULDER, RIGHT_ELBOW), new Limb(LEFT_ELBOW, LEFT_WRIST),
      new Limb(RIGHT_ELBOW, RIGHT_WRIST), new Limb(LEFT_EYE, RIGHT_EYE), new Limb(NOSE, LEFT_EYE),
      new Limb(NOSE, RIGHT_EYE), new Limb(LEFT_EYE, LEFT_EAR), new Limb(RIGHT_EYE, RIGHT_EAR),
      new Limb(LEFT_EAR, LEFT_SHOULDER), new Limb(RIGHT_EAR, RIGHT_SHOULDER));

  /** The key in {@code left_eye} style. */
  public String key() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** The name as SPHINX writes it, {@code left eye} style. */
  public String spoken() {
    return key().replace('_', ' ');
  }

  /**
   * The keypoint a name denotes, ignoring case and with spaces, underscores or hyphens between words
   * ({@code "Left eye"}, {@code "left_eye"}).
   */
  public static Optional<CocoKeypoint> fromName(String name) {
    String key = name.strip().toLowerCase(Locale.ROOT).replaceAll("[\\s_-]+", "_");
    for (CocoKeypoint k : values()) {
      if (k.key().equals(key)) {
        return Optional.of(k);
      }
    }
    return Optional.empty();
  }
}
