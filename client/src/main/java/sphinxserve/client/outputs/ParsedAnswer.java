package sphinxserve.client.outputs;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What {@link SphinxOutputs#parse(String)} found in an answer: regions and keypoints in the order written, and the
 * fragments it had to skip.
 *
 * @param text      the answer as given
 * @param regions   labelled boxes
 * @param keypoints COCO keypoints; an answer about several people lists each person's in turn
 * @param skipped   coordinate-like fragments that could not be read, with the reason
 */
public record ParsedAnswer(String text, List<Region> regions, List<Keypoint> keypoints, List<Skipped> skipped) {
  /** Copies the lists. */
  public ParsedAnswer {
    Objects.requireNonNull(text, "text");
    regions = List.copyOf(regions);
    keypoints = List.copyOf(keypoints);
    skipped = List.copyOf(skipped);
  }

  /** Keypoints by {@code left_eye}-style name, in the order written; the first wins when a name repeats. */
  public Map<String, Point> keypointMap() {
    Map<String, Point> map = new LinkedHashMap<>();
    for (Keypoint k : keypoints) {
      map.putIfAbsent(k.name(), k.point());
    }
    return map;
  }

  /**
   * Keypoints grouped into poses, one per person: a new pose starts when a keypoint repeats one already in the
   * current pose.
   */
  public List<Map<CocoKeypoint, Point>> poses() {
    List<Map<CocoKeypoint, Point>> poses = new ArrayList<>();
    Map<CocoKeypoint, Point> current = new EnumMap<>(CocoKeypoint.class);
    for (Keypoint k : keypoints) {
      if (current.containsKey(k.part())) {
        poses.add(current);
        current = new EnumMap<>(CocoKeypoint.class);
      }
      current.put(k.part(), k.point());
    }
    if (!current.isEmpty()) {
      poses.add(current);
    }
    return poses;
  }

  /** Whether neither regions nor keypoints were found. */
  public boolean isEmpty() {
    return regions.isEmpty() && keypoints.isEmpty();
  }
}
