package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.structured.SchemaTesting.accepts;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.client.outputs.ParsedAnswer;
import sphinxserve.client.outputs.SphinxOutputs;

/**
 * The grounding grammar against the client's own parser ({@link SphinxOutputs}): everything the grammar allows
 * parses with nothing skipped, one region or keypoint per coordinate group.
 *
 * <p>This test lives in {@code structured/} with the client as a test-scoped dependency: the grammar is the thing
 * under test and the parser is its oracle; neither module needs the other at run time, and the server (which
 * will wire both) would otherwise have to host a test of two modules it only passes through.
 */
class GroundingGrammarTest {
  /** Grounded answers as SPHINX writes them; the walks prefer tokens that are pieces of these. */
  private static final String SAMPLES = "There are two people[0.45,0.20,0.63,0.74;0.56,0.21,0.73,0.72] in the image. "
      + "<p>person</p> [0.05,0.10,0.95,1.00] nose[0.65,0.26], left eye[0.66,0.25;0.31,0.40], right_knee[0.50,0.90] "
      + "<p>left ankle</p> [0.45,0.23]\n(right wrist[1.00,0.00]) \"nose[0.00,1.00]\"";

  private static CompiledGrammar overBytes;

  @BeforeAll
  static void compile() {
    overBytes = Grammars.compile(GroundingGrammar.grammar(), SchemaTesting.BYTES);
  }

  @Test
  void accepts_sphinxAnswerForms() {
    for (String answer : List.of("", "No objects here.", SAMPLES,
        "There are three people[0.45,0.20,0.63,0.74;0.56,0.21,0.73,0.72] in the image.",
        "<p>person</p> [0.45,0.20,0.63,0.74]", "nose[0.65,0.26], left eye[0.66,0.25]", "<p>left eye</p> [0.45,0.23]",
        "<P>Left_eye</P>x", "point at nose[0.10,0.10]", "a box[0.10,0.10,0.10,0.10] of zero size", "日本語 テキスト")) {
      assertTrue(accepts(overBytes, answer), answer);
      assertClean(answer);
    }
  }

  @Test
  void rejects_whatTheParserWouldSkipOrMisread() {
    for (String answer : List.of("[0.5]", "a dog[0.1,0.2,0.3,0.4]", "dog[0.10,0.20,0.05,0.40]", "dog[0.10,0.20,0.30,0.15]",
        "dog[1.01,0.00,1.00,1.00]", "see [sic] here", "xnose[0.10,0.20]", "eye[0.10,0.20]", "dog[0.10,0.20]",
        "nose[0.10,0.20;]", "nose[0.10,0.20", "unmatched ] bracket")) {
      assertFalse(accepts(overBytes, answer), answer);
    }
  }

  @Test
  void boxes_acceptedExactlyWhenCornersAreOrdered() {
    Random random = new Random(7);
    for (int i = 0; i < 400; i++) {
      int x1 = random.nextInt(101);
      int y1 = random.nextInt(101);
      int x2 = i % 4 == 0 ? x1 : random.nextInt(101);
      int y2 = i % 5 == 0 ? y1 : random.nextInt(101);
      String answer = String.format(Locale.ROOT, "cars[%s,%s,%s,%s]", coord(x1), coord(y1), coord(x2), coord(y2));
      assertEquals(x2 >= x1 && y2 >= y1, accepts(overBytes, answer), answer);
    }
  }

  @Test
  void randomWalks_overBenchVocabulary_parseWithNothingSkipped() {
    TokenVocabulary vocabulary = RealVocabulary.get();
    CompiledGrammar grammar = Grammars.compile(GroundingGrammar.grammar(), vocabulary);
    int numGroups = 0;
    int numKeypoints = 0;
    // Half the walks start from a forced opening (a keypoint name, a tag or prose, then a bracket) and go on at
    // random: the coordinates, the closing and the rest are the walk's.
    List<String> openings = List.of("The person's nose[", "Her left eye[", "<p>right_knee</p> [", "(left ankle[",
        "Two dogs[", "right shoulder[0.5", "Look: nose[0.10,0.20;");
    for (int seed = 0; seed < 40; seed++) {
      String opening = seed % 2 == 0 ? "" : openings.get((seed / 2) % openings.size());
      GrammarMatcher matcher = grammar.newMatcher();
      assertTrue(matcher.acceptBytes(opening.getBytes(StandardCharsets.UTF_8)), opening);
      RandomWalk.Result walk = RandomWalk.run(matcher, opening, vocabulary, new Random(seed), 2_000, 0.9, id -> {
        byte[] b = vocabulary.tokenBytes(id);
        return vocabulary.isEos(id)
            || (b.length > 0 && SAMPLES.contains(new String(b, StandardCharsets.UTF_8)));
      });
      assertTrue(walk.ended(), () -> "no EOS: " + walk.text());
      int groups = assertClean(walk.text());
      numGroups += groups;
      numKeypoints += SphinxOutputs.parse(walk.text()).keypoints().size();
    }
    assertTrue(numGroups >= 20, "the walks wrote only " + numGroups + " coordinate groups");
    assertTrue(numKeypoints >= 3, "the walks wrote only " + numKeypoints + " keypoints");
  }

  /** Parses {@code answer}, asserting nothing is skipped and every coordinate group gave one result; returns their count. */
  private static int assertClean(String answer) {
    ParsedAnswer parsed = SphinxOutputs.parse(answer);
    assertTrue(parsed.skipped().isEmpty(), () -> parsed.skipped() + " in: " + answer);
    int groups = 0;
    boolean inBracket = false;
    for (char c : answer.toCharArray()) {
      if (c == '[') {
        inBracket = true;
        groups++;
      } else if (c == ']') {
        inBracket = false;
      } else if (c == ';' && inBracket) {
        groups++;
      }
    }
    int found = parsed.regions().size() + parsed.keypoints().size();
    assertEquals(groups, found, () -> "coordinate groups vs results in: " + answer);
    return groups;
  }

  private static String coord(int hundredths) {
    return String.format(Locale.ROOT, "%d.%02d", hundredths / 100, hundredths % 100);
  }
}
