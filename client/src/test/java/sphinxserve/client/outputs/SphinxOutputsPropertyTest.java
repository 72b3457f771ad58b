package sphinxserve.client.outputs;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.StringLength;

/**
 * The parser never throws and never hangs: arbitrary strings, soups of brackets, numbers, tags and keypoint names,
 * and very long inputs, each parsed under a time bound.
 */
class SphinxOutputsPropertyTest {
  /** Generous bound for one parse; the parser is linear, so even the longest inputs take milliseconds. */
  private static final Duration BOUND = Duration.ofSeconds(2);

  @Property(tries = 500)
  void parse_neverThrows_onAnyString(@ForAll @StringLength(max = 400) String answer) {
    check(answer);
  }

  @Property(tries = 500)
  void parse_neverThrows_onBracketSoup(@ForAll("soup") String answer) {
    check(answer);
  }

  @Property(tries = 20)
  void parse_isFast_onVeryLongInputs(@ForAll("longSoup") String answer) {
    check(answer);
  }

  @Property(tries = 5)
  void parse_isFast_onPathologicalRepetition(@ForAll("pathological") String answer) {
    check(answer);
  }

  private static void check(String answer) {
    ParsedAnswer parsed = assertTimeoutPreemptively(BOUND, () -> SphinxOutputs.parse(answer));
    assertNotNull(parsed);
    parsed.regions().forEach(r -> assertTrue(r.box().x1() <= r.box().x2() && r.box().y1() <= r.box().y2()));
    parsed.skipped().forEach(s -> assertTrue(s.offset() >= 0 && s.offset() <= answer.length()));
  }

  @Provide
  Arbitrary<String> soup() {
    return pieces().list().ofMaxSize(60).map(l -> String.join("", l));
  }

  @Provide
  Arbitrary<String> longSoup() {
    return pieces().list().ofMinSize(20_000).ofMaxSize(40_000).map(l -> String.join("", l));
  }

  @Provide
  Arbitrary<String> pathological() {
    return Arbitraries.of("[", "[0.1,", "<p>", "</p>", "left eye", " ", ";", "[0.1,0.2;", "a ")
        .map(p -> p.repeat(200_000 / Math.max(1, p.length())));
  }

  private static Arbitrary<String> pieces() {
    return Arbitraries.oneOf(
        Arbitraries.of("[", "]", ";", ",", ".", "-", "+", " ", "<p>", "</p>", "\n", "left eye", "right_ankle",
            "nose", "the", "three", "people", "a dog", "0", "1", "0.5", "1.5", "-0.1", ".", "..", "[[", "]]"),
        Arbitraries.doubles().between(-2, 2).ofScale(2).map(String::valueOf),
        Arbitraries.strings().withCharRange(' ', '~').ofMaxLength(5));
  }
}
