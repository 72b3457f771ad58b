package sphinxserve.server.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import sphinxserve.server.generate.ToolCallStream.CallArguments;
import sphinxserve.server.generate.ToolCallStream.CallStart;
import sphinxserve.server.generate.ToolCallStream.Content;
import sphinxserve.server.generate.ToolCallStream.Event;
import sphinxserve.server.generate.ToolCallStream.Syntax;

class ToolCallStreamTest {

  /** Feeds {@code answer} in random pieces; returns every event. */
  private static List<Event> feed(ToolCallStream stream, String answer, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    List<Event> events = new ArrayList<>();
    int i = 0;
    while (i < answer.length()) {
      int n = Math.min(answer.length() - i, 1 + random.nextInt(7));
      events.addAll(stream.push(answer.substring(i, i + n)));
      i += n;
    }
    events.addAll(stream.finish());
    return events;
  }

  private static String contentOf(List<Event> events) {
    StringBuilder sb = new StringBuilder();
    for (Event e : events) if (e instanceof Content c) sb.append(c.text());
    return sb.toString();
  }

  private static String argumentsOf(List<Event> events, int index) {
    StringBuilder sb = new StringBuilder();
    for (Event e : events) if (e instanceof CallArguments a && a.index() == index) sb.append(a.fragment());
    return sb.toString();
  }

  @Test
  void hermes_contentThenTwoCalls_streamsNamesAndArgumentsInPieces() {
    String answer = "Let me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris \\\"}\", \"days\": [1, 2]}}\n</tool_call>\n"
        + "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    for (long seed = 0; seed < 50; seed++) {
      ToolCallStream stream = new ToolCallStream(Syntax.HERMES);
      List<Event> events = feed(stream, answer, seed);
      assertEquals("Let me check.\n", contentOf(events), "seed " + seed);
      List<CallStart> starts = events.stream().filter(e -> e instanceof CallStart).map(e -> (CallStart) e).toList();
      assertEquals(2, starts.size());
      assertEquals("get_weather", starts.get(0).name());
      assertEquals("get_time", starts.get(1).name());
      assertTrue(starts.get(0).id().matches("call_[A-Za-z0-9]{24}"));
      assertEquals("{\"city\": \"Paris \\\"}\", \"days\": [1, 2]}", argumentsOf(events, 0));
      assertEquals("{}", argumentsOf(events, 1));
      assertEquals(2, stream.calls().size());
      assertEquals(argumentsOf(events, 0), stream.calls().get(0).arguments());
      assertEquals(starts.get(1).id(), stream.calls().get(1).id());
    }
  }

  @Test
  void hermes_partialMarkerIsHeldBackThenReleasedWhenItIsNotOne() {
    ToolCallStream stream = new ToolCallStream(Syntax.HERMES);
    assertEquals(List.of(new Content("a ")), stream.push("a <tool_"));
    assertEquals(List.of(new Content("<tool_x b ")), stream.push("x b <tool"));
    assertEquals(List.of(new Content("<tool")), stream.finish());
    assertEquals(0, stream.calls().size());
  }

  @Test
  void hermes_keysInAnotherOrder_areParsedWhole() {
    ToolCallStream stream = new ToolCallStream(Syntax.HERMES);
    List<Event> events = feed(stream, "<tool_call>{\"arguments\": {\"x\": 1}, \"name\": \"f\"}</tool_call>done", 3);
    assertEquals("done", contentOf(events));
    assertEquals("f", stream.calls().getFirst().name());
    assertEquals("{\"x\":1}", stream.calls().getFirst().arguments());
  }

  @Test
  void hermes_brokenBlock_staysContent() {
    ToolCallStream stream = new ToolCallStream(Syntax.HERMES);
    List<Event> events = feed(stream, "x<tool_call>not json</tool_call>", 1);
    assertEquals("x<tool_call>not json</tool_call>", contentOf(events));
    assertTrue(stream.calls().isEmpty());
  }

  @Test
  void llamaJson_wholeAnswerIsACall() {
    for (long seed = 0; seed < 20; seed++) {
      ToolCallStream stream = new ToolCallStream(Syntax.LLAMA_JSON);
      List<Event> events = feed(stream, " {\"name\": \"search\", \"parameters\": {\"q\": \"a}b\", \"n\": 3}}", seed);
      assertEquals("", contentOf(events));
      assertEquals("search", stream.calls().getFirst().name());
      assertEquals("{\"q\": \"a}b\", \"n\": 3}", stream.calls().getFirst().arguments());
    }
  }

  @Test
  void llamaJson_twoCallsJoinedBySemicolon() {
    ToolCallStream stream = new ToolCallStream(Syntax.LLAMA_JSON);
    feed(stream, "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"k\": true}}", 5);
    assertEquals(List.of("a", "b"), stream.calls().stream().map(ToolCallStream.Call::name).toList());
    assertEquals("{\"k\": true}", stream.calls().get(1).arguments());
  }

  @Test
  void llamaJson_plainTextAnswer_isContent() {
    ToolCallStream stream = new ToolCallStream(Syntax.LLAMA_JSON);
    List<Event> events = feed(stream, "The answer is {42}.", 2);
    assertEquals("The answer is {42}.", contentOf(events));
    assertTrue(stream.calls().isEmpty());
  }

  @Test
  void llamaJson_unfinishedCall_keepsWhatCame() {
    ToolCallStream stream = new ToolCallStream(Syntax.LLAMA_JSON);
    feed(stream, "{\"name\": \"f\", \"parameters\": {\"a\": [1,", 2);
    assertEquals("{\"a\": [1,", stream.calls().getFirst().arguments());
  }

  @Test
  void longNameOrUnclosedBlock_isParsedWithoutBacktrackingAndHeldOnlyUpToACap() {
    ToolCallStream llama = new ToolCallStream(Syntax.LLAMA_JSON);
    llama.push("{\"name\": \"" + "n".repeat(200_000)); // a regex with a repeated group would overflow the stack here
    llama.push("\", \"parameters\": {}}");
    llama.finish();
    ToolCallStream hermes = new ToolCallStream(Syntax.HERMES);
    List<Event> events = new ArrayList<>(hermes.push("<tool_call>{\"arguments\": {"));
    for (int i = 0; i < 20_000; i++) events.addAll(hermes.push("xxxxxxxxxx"));
    assertTrue(contentOf(events).startsWith("<tool_call>{\"arguments\""), "past the cap the unclosed block is released as text");
    events.addAll(hermes.finish());
    assertEquals(200_000 + "<tool_call>{\"arguments\": {".length(), contentOf(events).length());
    assertTrue(hermes.calls().isEmpty());
  }
}
