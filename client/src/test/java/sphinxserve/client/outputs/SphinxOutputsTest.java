package sphinxserve.client.outputs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

class SphinxOutputsTest {

  @TestFactory
  Stream<DynamicTest> parse_sharedTestVectors() throws IOException {
    return TestVectors.cases().stream().map(Value::getStructValue).map(c -> DynamicTest.dynamicTest(
        c.getFieldsOrThrow("prompt").getStringValue(), () -> {
          ParsedAnswer parsed = SphinxOutputs.parse(c.getFieldsOrThrow("answer").getStringValue());
          assertEquals(expectedRegions(c), parsed.regions());
          assertEquals(expectedKeypoints(c), parsed.keypointMap());
          assertEquals(List.of(), parsed.skipped());
        }));
  }

  private static List<Region> expectedRegions(Struct c) {
    List<Region> regions = new ArrayList<>();
    if (c.containsFields("regions")) {
      for (Value r : c.getFieldsOrThrow("regions").getListValue().getValuesList()) {
        List<Value> b = r.getStructValue().getFieldsOrThrow("box").getListValue().getValuesList();
        regions.add(new Region(r.getStructValue().getFieldsOrThrow("label").getStringValue(),
            new Box(b.get(0).getNumberValue(), b.get(1).getNumberValue(), b.get(2).getNumberValue(),
                b.get(3).getNumberValue())));
      }
    }
    return regions;
  }

  private static Map<String, Point> expectedKeypoints(Struct c) {
    Map<String, Point> keypoints = new LinkedHashMap<>();
    if (c.containsFields("keypoints")) {
      c.getFieldsOrThrow("keypoints").getStructValue().getFieldsMap().forEach((name, v) -> {
        List<Value> p = v.getListValue().getValuesList();
        keypoints.put(name, new Point(p.get(0).getNumberValue(), p.get(1).getNumberValue()));
      });
    }
    return keypoints;
  }

  @Test
  void parse_taggedLabelBeforeBracket() {
    ParsedAnswer parsed = SphinxOutputs.parse("<p>person</p> [0.10,0.20,0.30,0.40] and <p>a dog</p>[0.5,0.5,0.6,0.7]");
    assertEquals(List.of(new Region("person", new Box(0.10, 0.20, 0.30, 0.40)),
        new Region("dog", new Box(0.5, 0.5, 0.6, 0.7))), parsed.regions());
  }

  @Test
  void parse_taggedLabelWithCountKeepsTheNoun() {
    ParsedAnswer parsed = SphinxOutputs.parse("<p>two red cars</p> [0.1,0.1,0.2,0.2;0.3,0.3,0.4,0.4]");
    assertEquals(2, parsed.regions().size());
    assertTrue(parsed.regions().stream().allMatch(r -> r.label().equals("red cars")));
  }

  @Test
  void parse_taggedKeypointNames() {
    ParsedAnswer parsed = SphinxOutputs.parse("<p>left eye</p> [0.45,0.23] <p>Right_Ear</p> [0.40,0.25]");
    assertEquals(Map.of("left_eye", new Point(0.45, 0.23), "right_ear", new Point(0.40, 0.25)),
        parsed.keypointMap());
  }

  @Test
  void parse_underscoreKeypointNames() {
    ParsedAnswer parsed = SphinxOutputs.parse("left_shoulder[0.70,0.32], right_hip [0.61,0.46]");
    assertEquals(List.of(new Keypoint(CocoKeypoint.LEFT_SHOULDER, new Point(0.70, 0.32)),
        new Keypoint(CocoKeypoint.RIGHT_HIP, new Point(0.61, 0.46))), parsed.keypoints());
  }

  @Test
  void parse_phraseLabels() {
    assertEquals("man", label("A man[0.1,0.1,0.5,0.9] is riding a horse."));
    assertEquals("horse", SphinxOutputs.parse("A man[0.1,0.1,0.5,0.9] is riding a horse[0.2,0.3,0.9,0.9].")
        .regions().get(1).label());
    assertEquals("dog", label("The dog is located at [0.1,0.2,0.3,0.4]."));
    assertEquals("red car", label("I can see a red car[0.1,0.2,0.3,0.4]"));
    assertEquals("2 cats".substring(2), label("There are 2 cats[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]"));
    assertEquals("", label("[0.1,0.2,0.3,0.4]"));
    assertEquals("", label("Boxes: [0.1,0.2,0.3,0.4]"));
  }

  private static String label(String answer) {
    return SphinxOutputs.parse(answer).regions().getFirst().label();
  }

  @Test
  void parse_spacesInsideBrackets() {
    ParsedAnswer parsed = SphinxOutputs.parse("a cup[ 0.1, 0.2 , 0.3,0.4 ; 0.5,0.5,0.6,0.7 ]");
    assertEquals(List.of(new Box(0.1, 0.2, 0.3, 0.4), new Box(0.5, 0.5, 0.6, 0.7)),
        parsed.regions().stream().map(Region::box).toList());
  }

  @Test
  void parse_proseBracketsAreIgnoredSilently() {
    ParsedAnswer parsed = SphinxOutputs.parse("It says [sic] and [note 1] here.");
    assertTrue(parsed.isEmpty());
    assertEquals(List.of(), parsed.skipped());
  }

  @Test
  void parse_malformedFragmentsAreSkippedAndReported() {
    ParsedAnswer parsed = SphinxOutputs.parse("a cat[0.1,0.2,0.3] a dog[0.1,0.2,0.3,0.4] a bird[0.5,0.5,1.5,0.9] "
        + "a fox[0.5,0.5,0.4,0.9] a point[0.5,0.5] a cow[0.1,,0.2,0.3] a pig[0.1,0.2,0.3,0.4;] an owl[0.1,0.2");
    assertEquals(List.of(new Region("dog", new Box(0.1, 0.2, 0.3, 0.4)), new Region("pig", new Box(0.1, 0.2, 0.3, 0.4))),
        parsed.regions());
    List<String> reasons = parsed.skipped().stream().map(Skipped::reason).toList();
    assertEquals(7, reasons.size(), reasons.toString());
    assertTrue(reasons.get(0).startsWith("expected 2 numbers"), reasons.get(0));
    assertTrue(reasons.get(1).startsWith("coordinate outside"), reasons.get(1));
    assertTrue(reasons.get(2).startsWith("box corners out of order"), reasons.get(2));
    assertTrue(reasons.get(3).startsWith("a point without a COCO keypoint"), reasons.get(3));
    assertTrue(reasons.get(4).startsWith("not a number"), reasons.get(4));
    assertEquals("empty coordinate group", reasons.get(5));
    assertEquals("unclosed bracket", reasons.get(6));
    assertEquals("a cat[0.1,0.2,0.3] a dog".indexOf('[') + 1, parsed.skipped().getFirst().offset());
  }

  @Test
  void parse_nestedOpenBracketSkipsTheOuterOne() {
    ParsedAnswer parsed = SphinxOutputs.parse("x[0.1, a cat[0.1,0.2,0.3,0.4]");
    assertEquals(List.of(new Region("cat", new Box(0.1, 0.2, 0.3, 0.4))), parsed.regions());
  }

  @Test
  void parse_noCoordinates() {
    ParsedAnswer parsed = SphinxOutputs.parse("A cat is sitting on a mat.");
    assertTrue(parsed.isEmpty());
    assertFalse(parsed.text().isEmpty());
  }

  @Test
  void poses_splitWhenAKeypointRepeats() {
    ParsedAnswer parsed = SphinxOutputs.parse("nose[0.1,0.1], left eye[0.2,0.1]; nose[0.6,0.1], left eye[0.7,0.1]");
    assertEquals(2, parsed.poses().size());
    assertEquals(new Point(0.6, 0.1), parsed.poses().get(1).get(CocoKeypoint.NOSE));
    assertEquals(new Point(0.1, 0.1), parsed.keypointMap().get("nose"));
  }
}
