package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class StopStringMatcherTest {

  @Test
  void push_stopSplitAcrossManyDeltas_neverEmittedAndStopsAtItsStart() {
    StopStringMatcher m = new StopStringMatcher(List.of("\n###"));
    assertEquals("Hello", m.push("Hello").text());
    assertEquals("", m.push("\n").text());
    assertEquals("", m.push("#").text());
    assertEquals(2, m.numHeldBack());
    StopStringMatcher.Result r = m.push("## Human:");
    assertTrue(r.stopped());
    assertEquals("", r.text());
    assertEquals("\n###", r.stop());
    assertTrue(m.stopped());
    assertEquals("", m.push("more").text());
    assertEquals("", m.finish().text());
  }

  @Test
  void push_stopInsideOneDelta_emitsTextBeforeItAndDropsTheRest() {
    StopStringMatcher m = new StopStringMatcher(List.of("STOP"));
    StopStringMatcher.Result r = m.push("abcSTOPdef");
    assertTrue(r.stopped());
    assertEquals("abc", r.text());
  }

  @Test
  void push_partialMatchFails_releasesHeldText() {
    StopStringMatcher m = new StopStringMatcher(List.of("\n###"));
    assertEquals("ab", m.push("ab\n#").text());
    assertEquals(2, m.numHeldBack());
    StopStringMatcher.Result r = m.push("#x");
    assertFalse(r.stopped());
    assertEquals("\n##x", r.text());
    assertEquals(0, m.numHeldBack());
  }

  @Test
  void push_failedPrefixContainsNewPrefix_holdsOnlyTheNewPrefix() {
    StopStringMatcher m = new StopStringMatcher(List.of("aab"));
    assertEquals("", m.push("aa").text());
    assertEquals("a", m.push("a").text()); // "aaa": the first a can go, "aa" may still begin "aab"
    StopStringMatcher.Result r = m.push("b");
    assertTrue(r.stopped());
    assertEquals("", r.text());
  }

  @Test
  void finish_releasesHeldText() {
    StopStringMatcher m = new StopStringMatcher(List.of("\n###"));
    assertEquals("abc", m.push("abc\n##").text());
    StopStringMatcher.Result r = m.finish();
    assertFalse(r.stopped());
    assertEquals("\n##", r.text());
    assertNull(r.stop());
  }

  @Test
  void push_multipleStops_firstToEndWins() {
    StopStringMatcher m = new StopStringMatcher(List.of("abcd", "c"));
    StopStringMatcher.Result r = m.push("xabcd");
    assertEquals("xab", r.text());
    assertEquals("c", r.stop());
  }

  @Test
  void push_stopsEndingTogether_longestWins() {
    StopStringMatcher m = new StopStringMatcher(List.of("b", "ab"));
    StopStringMatcher.Result r = m.push("xab");
    assertEquals("x", r.text());
    assertEquals("ab", r.stop());
  }

  @Test
  void push_overlappingPrefixes_matchesAfterFailLink() {
    StopStringMatcher m = new StopStringMatcher(List.of("abcx", "bcd"));
    assertEquals("", m.push("a").text());
    assertEquals("", m.push("bc").text());
    StopStringMatcher.Result r = m.push("d");
    assertTrue(r.stopped());
    assertEquals("a", r.text());
    assertEquals("bcd", r.stop());
  }

  @Test
  void push_noStops_passesEverythingThrough() {
    StopStringMatcher m = new StopStringMatcher(List.of());
    assertEquals("anything", m.push("anything").text());
    assertEquals("", m.finish().text());
  }

  @Test
  void push_stopWithSupplementaryCharacter_matches() {
    StopStringMatcher m = new StopStringMatcher(List.of("😀!"));
    assertEquals("hi ", m.push("hi 😀").text());
    StopStringMatcher.Result r = m.push("!");
    assertTrue(r.stopped());
    assertEquals("", r.text());
  }

  @Test
  void push_randomTextRandomSplits_sameOutcomeAsWholeText() {
    Random random = new Random(11);
    List<String> stops = List.of("\n###", "aba", "bb", "##");
    for (int trial = 0; trial < 3000; trial++) {
      StringBuilder text = new StringBuilder();
      int len = random.nextInt(30);
      for (int i = 0; i < len; i++) text.append("ab#\nxy".charAt(random.nextInt(6)));
      String expected = reference(text.toString(), stops);

      StopStringMatcher m = new StopStringMatcher(stops);
      StringBuilder emitted = new StringBuilder();
      boolean stopped = false;
      int i = 0;
      while (i < text.length() && !stopped) {
        int j = Math.min(text.length(), i + 1 + random.nextInt(4));
        StopStringMatcher.Result r = m.push(text.substring(i, j));
        emitted.append(r.text());
        stopped = r.stopped();
        i = j;
      }
      if (!stopped) emitted.append(m.finish().text());
      assertEquals(expected, emitted.toString(), () -> "text " + text.toString().replace("\n", "\\n"));
    }
  }

  /** Text before the stop occurrence that ends first (longest on a tie), or all of it. */
  private static String reference(String text, List<String> stops) {
    for (int end = 1; end <= text.length(); end++) {
      List<String> ending = new ArrayList<>();
      for (String s : stops) if (text.startsWith(s, end - s.length()) && end >= s.length()) ending.add(s);
      if (!ending.isEmpty()) {
        int longest = ending.stream().mapToInt(String::length).max().orElseThrow();
        return text.substring(0, end - longest);
      }
    }
    return text;
  }
}
