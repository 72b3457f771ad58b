package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import sphinxserve.server.generate.ToolCallStream;

/**
 * How {@link OpenAiResponses} shapes a chat answer that may call tools, piece by piece as the engine streams it: the
 * deltas of every split of the same text assemble to what the whole body says (content, calls, finish reason), white
 * space around calls included; and errors found past the translation are renamed to the fields the body sent.
 */
class OpenAiResponsesToolCallsTest {

  private static OpenAiRequests.Parsed parsed(ToolCallStream.Syntax syntax, boolean stream) {
    return new OpenAiRequests.Parsed(List.of(new OpenAiRequests.ChoiceRequest(0, GenerateRequest.getDefaultInstance(), null)), 1, stream,
        false, false, 0, syntax, Map.of("sampling.constraint.json_schema", "structured_outputs.json", "sampling.constraint", "structured_outputs"));
  }

  /** The body of {@code text} unstreamed: {@code choices[0]}. */
  private static JsonNode whole(ToolCallStream.Syntax syntax, String text, FinishReason reason) {
    OpenAiResponses responses = new OpenAiResponses(OpenAiResponses.Kind.CHAT, "r", "m", null, parsed(syntax, false));
    return responses.complete(List.of(new OpenAiResponses.ChoiceResult(0, text, reason, List.of())), Usage.getDefaultInstance())
        .path("choices").get(0);
  }

  /** {@code pieces} streamed, the last response finishing with {@code reason}: content, calls and finish assembled. */
  private static JsonNode streamed(ToolCallStream.Syntax syntax, List<String> pieces, FinishReason reason) {
    OpenAiResponses responses = new OpenAiResponses(OpenAiResponses.Kind.CHAT, "r", "m", null, parsed(syntax, true));
    List<ObjectNode> chunks = new ArrayList<>();
    for (int i = 0; i < pieces.size(); i++) {
      chunks.add(responses.chunk(0, GenerateResponse.newBuilder().setText(pieces.get(i)).build(), i == 0));
    }
    chunks.add(responses.chunk(0, GenerateResponse.newBuilder().setFinishReason(reason).build(), pieces.isEmpty()));
    StringBuilder content = new StringBuilder();
    boolean contentSeen = false;
    var out = OpenAiResponses.JSON.createObjectNode();
    var calls = out.putObject("message").putArray("tool_calls");
    for (ObjectNode chunk : chunks) {
      JsonNode choice = chunk.path("choices").get(0);
      JsonNode delta = choice.path("delta");
      if (delta.path("content").isTextual()) {
        content.append(delta.path("content").asText());
        contentSeen |= !delta.path("content").asText().isEmpty();
      }
      for (JsonNode call : delta.path("tool_calls")) {
        int index = call.path("index").asInt();
        if (index == calls.size()) {
          assertTrue(call.path("id").asText().startsWith("call_") && call.path("type").asText().equals("function"), call.toString());
          calls.addObject().put("name", call.path("function").path("name").asText()).put("arguments", "");
        }
        ObjectNode assembled = (ObjectNode) calls.get(index);
        assembled.put("arguments", assembled.path("arguments").asText() + call.path("function").path("arguments").asText());
      }
      if (choice.path("finish_reason").isTextual()) out.put("finish_reason", choice.path("finish_reason").asText());
    }
    ((ObjectNode) out.path("message")).put("content", contentSeen || calls.isEmpty() ? content.toString() : null);
    return out;
  }

  /** The whole body's choice in the shape {@link #streamed} assembles. */
  private static JsonNode comparable(JsonNode whole) {
    var out = OpenAiResponses.JSON.createObjectNode();
    var message = out.putObject("message");
    var calls = message.putArray("tool_calls");
    for (JsonNode call : whole.path("message").path("tool_calls")) {
      calls.addObject().put("name", call.path("function").path("name").asText()).put("arguments", call.path("function").path("arguments").asText());
    }
    message.set("content", whole.path("message").path("content"));
    out.put("finish_reason", whole.path("finish_reason").asText());
    return out;
  }

  /** Every split of {@code text} into two or three pieces streams to what the whole body says. */
  private static JsonNode assertEverySplitAssemblesToTheWhole(ToolCallStream.Syntax syntax, String text, FinishReason reason) {
    JsonNode expected = comparable(whole(syntax, text, reason));
    for (int i = 0; i <= text.length(); i++) {
      for (int j = i; j <= text.length(); j += 7) {
        List<String> pieces = List.of(text.substring(0, i), text.substring(i, j), text.substring(j));
        assertEquals(expected, streamed(syntax, pieces, reason), pieces.toString());
      }
    }
    return expected;
  }

  @Test
  void hermes_contentThenCalls_streamedAssemblesToTheWhole() {
    String text = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
        + "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>";
    JsonNode whole = assertEverySplitAssemblesToTheWhole(ToolCallStream.Syntax.HERMES, text, FinishReason.TOOL_CALLS);
    assertEquals("tool_calls", whole.path("finish_reason").asText());
    assertEquals("Let me look.\n\n", whole.path("message").path("content").asText(), "the text outside the calls");
    assertEquals("{\"city\": \"Paris\"}", whole.path("message").path("tool_calls").get(0).path("arguments").asText());
    assertEquals("get_time", whole.path("message").path("tool_calls").get(1).path("name").asText());
  }

  @Test
  void hermes_onlyCallsAndWhiteSpace_contentIsNull_streamedShowsNoContent() {
    String text = "\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\n";
    JsonNode whole = whole(ToolCallStream.Syntax.HERMES, text, FinishReason.TOOL_CALLS);
    assertTrue(whole.path("message").path("content").isNull(), whole.toString());
    assertEverySplitAssemblesToTheWhole(ToolCallStream.Syntax.HERMES, text, FinishReason.TOOL_CALLS);
  }

  @Test
  void plainAnswers_whiteSpaceOnlyOrText_areContent_finishStop() {
    for (String text : List.of("  \n ", "Hello <tool", "")) {
      JsonNode whole = assertEverySplitAssemblesToTheWhole(ToolCallStream.Syntax.HERMES, text, FinishReason.STOP);
      assertEquals(text, whole.path("message").path("content").asText());
      assertEquals("stop", whole.path("finish_reason").asText());
    }
  }

  @Test
  void llamaJson_theAnswerIsTheCall_andACallCutByTheLengthLimitKeepsWhatCame() {
    String text = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\", \"days\": 3}}";
    JsonNode whole = assertEverySplitAssemblesToTheWhole(ToolCallStream.Syntax.LLAMA_JSON, text, FinishReason.TOOL_CALLS);
    assertEquals("{\"city\": \"Rome\", \"days\": 3}", whole.path("message").path("tool_calls").get(0).path("arguments").asText());
    assertTrue(whole.path("message").path("content").isNull());

    String cut = text.substring(0, text.indexOf("Rome"));
    JsonNode partial = assertEverySplitAssemblesToTheWhole(ToolCallStream.Syntax.LLAMA_JSON, cut, FinishReason.LENGTH);
    assertEquals("length", partial.path("finish_reason").asText());
    assertEquals("get_weather", partial.path("message").path("tool_calls").get(0).path("name").asText());
  }

  @Test
  void inHttpTerms_renamesTheFieldsTheBodySent() {
    OpenAiRequests.Parsed p = parsed(null, false);
    assertEquals("structured_outputs.json: #/multipleOf: unsupported",
        p.inHttpTerms(Status.INVALID_ARGUMENT.withDescription("sampling.constraint.json_schema: #/multipleOf: unsupported")).getDescription());
    assertEquals("structured_outputs: cannot be combined with tool_choice REQUIRED",
        p.inHttpTerms(Status.INVALID_ARGUMENT.withDescription("sampling.constraint: cannot be combined with tool_choice REQUIRED")).getDescription());
    assertEquals("tools[2].function.parameters: must be a JSON Schema object",
        p.inHttpTerms(Status.INVALID_ARGUMENT.withDescription("tools[2].parameters: must be a JSON Schema object")).getDescription());
    assertEquals("messages[1].tool_calls[0].function.arguments: is not valid JSON",
        p.inHttpTerms(Status.INVALID_ARGUMENT.withDescription("messages[1].tool_calls[0].arguments: is not valid JSON")).getDescription());
    assertEquals("tool_choice.function.name: 'x' is not one of the request's tools",
        p.inHttpTerms(Status.INVALID_ARGUMENT.withDescription("tool_choice.function_name: 'x' is not one of the request's tools")).getDescription());
    assertEquals("max_tokens: too many", p.inHttpTerms(Status.INVALID_ARGUMENT.withDescription("sampling.max_tokens: too many")).getDescription());
    assertEquals("node is draining", p.inHttpTerms(Status.UNAVAILABLE.withDescription("node is draining")).getDescription());
  }
}
