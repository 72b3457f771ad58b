package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.helpers.ChatCompletionAccumulator;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionFunctionTool;
import com.openai.models.chat.completions.ChatCompletionMessage;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionMessageToolCall;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.runtime.chat.ChatPromptEncoder;
import sphinxserve.runtime.chat.ChatTurn;
import sphinxserve.runtime.chat.JinjaChatTemplate;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;

/**
 * Tool calls over HTTP with the official OpenAI Java client against real nodes serving random-weight Hugging Face
 * folders ({@code --model}) whose chat templates are Qwen 2.5's (Hermes {@code <tool_call>} blocks) and LLaMA 3.1's
 * (a JSON object): {@code tool_choice} required and named are constrained, so every call parses and its arguments
 * validate against the tool's parameters (networknt's validator); auto leaves the model free and returns whatever it
 * wrote consistently; streamed {@code delta.tool_calls} assemble (the client's accumulator) to the calls of the same
 * request unstreamed; a tool's result fed back renders through the template exactly as transformers would pass it.
 */
class OpenAiToolCallsTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final SchemaRegistry VALIDATORS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12);

  /** Bounded parameters (enums, short strings, small integers), so a constrained call ends within a few dozen tokens. */
  private static final String WEATHER = """
      {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome", "Oslo"]}, "unit": {"enum": ["c", "f"]},
       "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "unit"], "additionalProperties": false}""";
  private static final String TIME = """
      {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 6}}, "required": ["zone"], "additionalProperties": false}""";
  private static final Map<String, String> SCHEMAS = Map.of("get_weather", WEATHER, "get_time", TIME);

  private static final List<String> QWEN_SPECIALS = List.of("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>");
  private static final List<String> LLAMA_SPECIALS = List.of("<unk>", "<s>", "</s>", "<|start_header_id|>", "<|end_header_id|>",
      "<|eot_id|>", "<|python_tag|>", "<|eom_id|>");

  @TempDir
  static Path tmp;
  private static Served qwen;
  private static Served llama;

  /** A node serving a random model folder with a real tool template, and a client of its HTTP API. */
  private record Served(Path model, SphinxNode node, OpenAIClient openai, String template) implements AutoCloseable {
    static Served start(Path dir, String templateFile, List<String> specials, List<Integer> eos, long seed) throws IOException {
      String template = resource(templateFile);
      Path model = RandomCheckpoints.builder().specialTokens(specials).eosTokenIds(eos).chatTemplate(template)
          .maxPositionEmbeddings(4096).seed(seed).build().writeHf(dir.resolve("Tiny-Tools"));
      return serve(dir, model, template);
    }

    /** A node serving {@code model} (its bundle built into {@code dir}), with {@code flags} over the test's. */
    static Served serve(Path dir, Path model, String template, String... flags) {
      List<String> args = new ArrayList<>(List.of("--model", model.toString(), "--bundle-cache", dir.resolve("cache").toString(),
          "--port=0", "--metrics-port=0", "--http-port=0", "--kv-blocks=512", "--ort-threads=1", "--drain-seconds=1"));
      args.addAll(List.of(flags));
      NodeConfig config = NodeConfig.parse(args.toArray(String[]::new), Map.of());
      SphinxNode node = SphinxNode.open(config, EngineBackend::new);
      OpenAIClient openai = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + node.httpPort() + "/v1").apiKey("unused")
          .maxRetries(0).timeout(Duration.ofSeconds(120)).build();
      return new Served(model, node, openai, template);
    }

    @Override
    public void close() {
      openai.close();
      node.close();
    }
  }

  @BeforeAll
  static void start() throws IOException {
    qwen = Served.start(tmp.resolve("qwen"), "Qwen-Qwen2.5-7B-Instruct.jinja", QWEN_SPECIALS, List.of(4, 2), 21);
    llama = Served.start(tmp.resolve("llama"), "meta-llama-Llama-3.1-8B-Instruct.jinja", LLAMA_SPECIALS, List.of(5, 7), 22);
  }

  @AfterAll
  static void stop() {
    if (qwen != null) qwen.close();
    if (llama != null) llama.close();
  }

  private static String resource(String file) {
    try (InputStream in = OpenAiToolCallsTest.class.getResourceAsStream("/chat-templates/" + file)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static ChatCompletionFunctionTool tool(String name, String description) {
    try {
      Map<String, JsonValue> parameters = new LinkedHashMap<>();
      JSON.readTree(SCHEMAS.get(name)).fields().forEachRemaining(e -> parameters.put(e.getKey(),
          JsonValue.from(JSON.convertValue(e.getValue(), Object.class))));
      return ChatCompletionFunctionTool.builder().function(FunctionDefinition.builder().name(name).description(description)
          .parameters(FunctionParameters.builder().putAllAdditionalProperties(parameters).build()).strict(true).build()).build();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static ChatCompletionCreateParams.Builder ask(String question, long seed) {
    return ChatCompletionCreateParams.builder().model("Tiny-Tools").addUserMessage(question).maxCompletionTokens(900)
        .temperature(1.0).seed(seed).addTool(tool("get_weather", "The weather forecast of a city"))
        .addTool(tool("get_time", "The time in a zone"));
  }

  private static List<ChatCompletionMessageFunctionToolCall> calls(ChatCompletionMessage message) {
    return message.toolCalls().orElse(List.of()).stream().map(ChatCompletionMessageToolCall::asFunction).toList();
  }

  /** Every call names a tool and its arguments are JSON its parameters' schema accepts. */
  private static void assertValidCalls(List<ChatCompletionMessageFunctionToolCall> calls) {
    assertFalse(calls.isEmpty());
    for (ChatCompletionMessageFunctionToolCall call : calls) {
      assertTrue(call.id().startsWith("call_"), call.id());
      String schema = SCHEMAS.get(call.function().name());
      assertTrue(schema != null, "a tool of the request: " + call.function().name());
      Schema validator = VALIDATORS.getSchema(schema, InputFormat.JSON);
      assertEquals(List.of(), validator.validate(call.function().arguments(), InputFormat.JSON), call.function().arguments());
    }
  }

  @Test
  void required_everyCallParsesAndValidates_inBothSyntaxes() {
    for (Served served : List.of(qwen, llama)) {
      for (long seed = 0; seed < 4; seed++) {
        ChatCompletion c = served.openai().chat().completions().create(ask("What is the weather in Paris?", seed)
            .toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED).parallelToolCalls(seed % 2 == 0).build());
        ChatCompletion.Choice choice = c.choices().getFirst();
        assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, choice.finishReason(), served.template().substring(0, 20));
        assertTrue(choice.message().content().isEmpty(), "an answer that is only calls has content null");
        List<ChatCompletionMessageFunctionToolCall> calls = calls(choice.message());
        assertValidCalls(calls);
        if (seed % 2 == 1) assertEquals(1, calls.size(), "parallel_tool_calls false: one call");
      }
    }
  }

  @Test
  void named_callsThatFunction_streamedDeltasAssembleToTheSameCall() {
    for (Served served : List.of(qwen, llama)) {
      for (long seed = 0; seed < 3; seed++) {
        ChatCompletionCreateParams params = ask("Weather?", seed).toolChoice(ChatCompletionNamedToolChoice.builder()
            .function(ChatCompletionNamedToolChoice.Function.builder().name("get_weather").build()).build()).build();
        ChatCompletion whole = served.openai().chat().completions().create(params);
        List<ChatCompletionMessageFunctionToolCall> calls = calls(whole.choices().getFirst().message());
        assertEquals(1, calls.size());
        assertEquals("get_weather", calls.getFirst().function().name());
        assertValidCalls(calls);

        ChatCompletionAccumulator accumulator = ChatCompletionAccumulator.create();
        int argumentDeltas = 0;
        try (StreamResponse<ChatCompletionChunk> stream = served.openai().chat().completions().createStreaming(params)) {
          for (ChatCompletionChunk chunk : (Iterable<ChatCompletionChunk>) stream.stream()::iterator) {
            accumulator.accumulate(chunk);
            for (ChatCompletionChunk.Choice ch : chunk.choices()) {
              for (ChatCompletionChunk.Choice.Delta.ToolCall call : ch.delta().toolCalls().orElse(List.of())) {
                if (call.id().isEmpty()) argumentDeltas++; // a continuation: index and an arguments fragment only
              }
            }
          }
        }
        ChatCompletion.Choice streamed = accumulator.chatCompletion().choices().getFirst();
        assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, streamed.finishReason());
        List<ChatCompletionMessageFunctionToolCall> streamedCalls = calls(streamed.message());
        assertEquals(1, streamedCalls.size());
        assertEquals(calls.getFirst().function().name(), streamedCalls.getFirst().function().name());
        assertEquals(calls.getFirst().function().arguments(), streamedCalls.getFirst().function().arguments(),
            "the same seed: the same call, streamed or not");
        assertTrue(argumentDeltas > 0, "the arguments arrive as they are generated, not in one piece");
      }
    }
  }

  @Test
  void auto_theModelIsFree_andWhatItWroteComesBackTheSameStreamedOrNot() throws Exception {
    for (long seed = 0; seed < 3; seed++) {
      ChatCompletionCreateParams params = ask("Hi", seed).maxCompletionTokens(40).build();
      ChatCompletion whole = qwen.openai().chat().completions().create(params);
      ChatCompletion.Choice choice = whole.choices().getFirst();
      ChatCompletionAccumulator accumulator = ChatCompletionAccumulator.create();
      try (StreamResponse<ChatCompletionChunk> stream = qwen.openai().chat().completions().createStreaming(params)) {
        stream.stream().forEach(accumulator::accumulate);
      }
      ChatCompletion.Choice streamed = accumulator.chatCompletion().choices().getFirst();
      assertEquals(choice.finishReason(), streamed.finishReason());
      assertEquals(choice.message().content(), streamed.message().content());
      assertEquals(calls(choice.message()).stream().map(c -> c.function().name() + c.function().arguments()).toList(),
          calls(streamed.message()).stream().map(c -> c.function().name() + c.function().arguments()).toList());
      assertEquals(choice.finishReason() == ChatCompletion.Choice.FinishReason.TOOL_CALLS, !calls(choice.message()).isEmpty());
    }
    // A free answer that does write a call (forced here by a regex, as a model trained on the template would write it):
    // the text before it is content, the block a call, the finish tool_calls, streamed or not.
    String regex = "Let me check\\.\\n<tool_call>\\n\\{\"name\": \"get_weather\", \"arguments\": \\{\"city\": \"(Paris|Rome)\", \"unit\": \"c\"\\}\\}\\n</tool_call>";
    for (boolean stream : List.of(false, true)) {
      HttpResponse<String> response = post(qwen, "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather?\"}], \"max_tokens\": 200, "
          + "\"stream\": " + stream + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": " + WEATHER + "}}], "
          + "\"structured_outputs\": {\"regex\": " + JSON.writeValueAsString(regex) + "}}");
      assertEquals(200, response.statusCode(), response.body());
      JsonNode message = stream ? assembled(response.body()) : JSON.readTree(response.body()).path("choices").get(0);
      assertEquals("tool_calls", message.path("finish_reason").asText(), response.body());
      assertEquals("Let me check.\n", message.path("message").path("content").asText(), response.body());
      JsonNode call = message.path("message").path("tool_calls").get(0);
      assertEquals("get_weather", call.path("function").path("name").asText());
      assertEquals("function", call.path("type").asText());
      JsonNode arguments = JSON.readTree(call.path("function").path("arguments").asText());
      assertTrue(List.of("Paris", "Rome").contains(arguments.path("city").asText()), arguments.toString());
    }
  }

  @Test
  void aToolResultFedBack_rendersThroughTheTemplateAsTransformersPassesIt_andGetsAnAnswer() throws Exception {
    ChatCompletionCreateParams first = ask("What is the weather in Paris?", 5).toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED)
        .parallelToolCalls(false).build();
    ChatCompletionMessage assistant = qwen.openai().chat().completions().create(first).choices().getFirst().message();
    ChatCompletionMessageFunctionToolCall call = calls(assistant).getFirst();
    ChatCompletion answer = qwen.openai().chat().completions().create(ask("What is the weather in Paris?", 5).maxCompletionTokens(8)
        .addMessage(assistant)
        .addMessage(ChatCompletionToolMessageParam.builder().toolCallId(call.id()).content("18 degrees and sunny").build()).build());
    ChatCompletion.Choice choice = answer.choices().getFirst();
    assertNotEquals(ChatCompletion.Choice.FinishReason.CONTENT_FILTER, choice.finishReason());

    // The prompt the node rendered is what the template makes of the conversation as transformers passes it.
    Map<String, Object> arguments = JSON.readValue(call.function().arguments(), new TypeReference<LinkedHashMap<String, Object>>() {});
    List<ChatTurn> turns = List.of(ChatTurn.user("What is the weather in Paris?"),
        ChatTurn.assistantToolCalls(null, List.of(new ChatTurn.ToolCall(call.id(), call.function().name(), arguments))),
        ChatTurn.tool(call.id(), "18 degrees and sunny"));
    List<Map<String, ?>> tools = List.of(definition("get_weather", "The weather forecast of a city"), definition("get_time", "The time in a zone"));
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(qwen.model())) {
      ChatPromptEncoder encoder = new ChatPromptEncoder(JinjaChatTemplate.compile("qwen", qwen.template(), Map.of()), tokenizer, false);
      assertEquals(encoder.encode(turns, tools, true).length, answer.usage().orElseThrow().promptTokens());

      // tool_choice none: the tools are not shown to the template (the history still is).
      ChatCompletion none = qwen.openai().chat().completions().create(ask("What is the weather in Paris?", 5).maxCompletionTokens(4)
          .addMessage(assistant).addMessage(ChatCompletionToolMessageParam.builder().toolCallId(call.id()).content("18 degrees and sunny").build())
          .toolChoice(ChatCompletionToolChoiceOption.Auto.NONE).build());
      assertEquals(encoder.encode(turns, null, true).length, none.usage().orElseThrow().promptTokens());
      assertTrue(calls(none.choices().getFirst().message()).isEmpty(), "tool_choice none: no calls are parsed");
    }
  }

  @Test
  void toolCallFormatFlag_overridesTheTemplate() throws Exception {
    // --tool-call-format=none on a Hermes template: the node parses no calls, so it cannot constrain to them either.
    try (Served none = Served.serve(tmp.resolve("qwen"), qwen.model(), qwen.template(), "--tool-call-format=none")) {
      String weather = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": " + WEATHER + "}}";
      assertRefused(post(none, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [" + weather + "], "
          + "\"tool_choice\": \"required\"}"), "tool_choice", "no tool-call syntax");
      String regex = "<tool_call>\\n\\{\"name\": \"get_weather\", \"arguments\": \\{\\}\\}\\n</tool_call>";
      HttpResponse<String> free = post(none, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 100, \"tools\": ["
          + weather + "], \"structured_outputs\": {\"regex\": " + JSON.writeValueAsString(regex) + "}}");
      JsonNode choice = JSON.readTree(free.body()).path("choices").get(0);
      assertEquals("stop", choice.path("finish_reason").asText(), free.body());
      assertTrue(choice.path("message").path("tool_calls").isMissingNode(), free.body());
      assertEquals("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>", choice.path("message").path("content").asText());
    }
    // --tool-call-format=llama-json on the same template: calls are constrained to and parsed as LLaMA's JSON.
    try (Served json = Served.serve(tmp.resolve("qwen"), qwen.model(), qwen.template(), "--tool-call-format=llama-json")) {
      ChatCompletion c = json.openai().chat().completions().create(ask("Weather?", 1).toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED).build());
      assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, c.choices().getFirst().finishReason());
      assertValidCalls(calls(c.choices().getFirst().message()));
    }
  }

  @Test
  void refusals_nameTheHttpField() throws Exception {
    String user = "\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]";
    String weather = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": " + WEATHER + "}}";
    assertRefused(post(qwen, "{" + user + ", \"tools\": [" + weather + "], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"nope\"}}}"),
        "tool_choice.function.name", "nope");
    assertRefused(post(qwen, "{" + user + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"bad name\"}}]}"),
        "tools[0].function.name", "");
    assertRefused(post(qwen, "{" + user + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": "
        + "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\", \"multipleOf\": 3}}}}}], \"tool_choice\": \"required\"}"),
        "tools[0].function.parameters", "multipleOf");
    assertRefused(post(qwen, "{" + user + ", \"tools\": [{\"type\": \"custom\", \"custom\": {\"name\": \"f\"}}]}"), "tools[0].custom", "");
    assertRefused(post(qwen, "{" + user + ", \"tool_choice\": \"required\"}"), "tool_choice", "needs tools");
    assertRefused(post(qwen, "{" + user + ", \"tools\": [" + weather + "], \"tool_choice\": \"required\", "
        + "\"response_format\": {\"type\": \"json_object\"}}"), "response_format", "tool_choice");
    assertRefused(post(qwen, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": null, "
        + "\"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{not json\"}}]}, "
        + "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"r\"}]}"), "messages[1].tool_calls[0].function.arguments", "JSON");
    assertRefused(post(qwen, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": null, "
        + "\"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{}\"}}]}, "
        + "{\"role\": \"tool\", \"tool_call_id\": \"call_2\", \"content\": \"r\"}]}"), "messages[2].tool_call_id", "call_2");
    assertRefused(post(qwen, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"tool\", \"content\": \"r\"}]}"),
        "messages[1].tool_call_id", "required");
    assertRefused(post(qwen, "{" + user + ", \"function_call\": \"auto\"}"), "function_call", "tools");
    assertRefused(post(qwen, "{\"messages\": [{\"role\": \"function\", \"name\": \"f\", \"content\": \"x\"}]}"), "messages[0].role", "tool");

    // The client's own typed refusal carries the same param.
    BadRequestException e = assertThrows(BadRequestException.class, () -> qwen.openai().chat().completions().create(ask("x", 0)
        .toolChoice(ChatCompletionNamedToolChoice.builder().function(ChatCompletionNamedToolChoice.Function.builder().name("nope").build()).build())
        .build()));
    assertEquals("tool_choice.function.name", e.param().orElseThrow());
  }

  /** A tool definition as transformers passes an OpenAI-style one to the template. */
  private static Map<String, ?> definition(String name, String description) throws IOException {
    Map<String, Object> function = new LinkedHashMap<>();
    function.put("name", name);
    function.put("description", description);
    function.put("parameters", JSON.readValue(SCHEMAS.get(name), new TypeReference<LinkedHashMap<String, Object>>() {}));
    Map<String, Object> tool = new LinkedHashMap<>();
    tool.put("type", "function");
    tool.put("function", function);
    return tool;
  }

  private static void assertRefused(HttpResponse<String> response, String param, String inMessage) throws IOException {
    assertEquals(400, response.statusCode(), response.body());
    JsonNode error = JSON.readTree(response.body()).path("error");
    assertEquals(param, error.path("param").asText(), response.body());
    assertTrue(error.path("message").asText().startsWith(param + ": "), response.body());
    assertTrue(error.path("message").asText().contains(inMessage), response.body());
  }

  /** A stream's chunks assembled by hand into {@code {"message": {"content", "tool_calls"}, "finish_reason"}}. */
  private static JsonNode assembled(String body) throws IOException {
    StringBuilder content = new StringBuilder();
    List<Map<String, String>> calls = new ArrayList<>();
    String finish = null;
    for (String line : body.split("\n")) {
      if (!line.startsWith("data: ") || line.equals("data: [DONE]")) continue;
      JsonNode choice = JSON.readTree(line.substring(6)).path("choices").get(0);
      JsonNode delta = choice.path("delta");
      if (delta.path("content").isTextual()) content.append(delta.path("content").asText());
      for (JsonNode call : delta.path("tool_calls")) {
        int index = call.path("index").asInt();
        if (index == calls.size()) {
          assertTrue(call.path("id").isTextual() && call.path("function").path("name").isTextual(), "a call's first delta names it: " + call);
          calls.add(new LinkedHashMap<>(Map.of("id", call.path("id").asText(), "name", call.path("function").path("name").asText(),
              "type", call.path("type").asText(), "arguments", "")));
        }
        calls.get(index).merge("arguments", call.path("function").path("arguments").asText(""), String::concat);
      }
      if (choice.path("finish_reason").isTextual()) finish = choice.path("finish_reason").asText();
    }
    var out = JSON.createObjectNode();
    var message = out.putObject("message").put("content", content.toString());
    var toolCalls = message.putArray("tool_calls");
    for (Map<String, String> call : calls) {
      toolCalls.addObject().put("id", call.get("id")).put("type", call.get("type")).putObject("function")
          .put("name", call.get("name")).put("arguments", call.get("arguments"));
    }
    out.put("finish_reason", finish);
    return out;
  }

  private static HttpResponse<String> post(Served served, String body) throws Exception {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + served.node().httpPort() + "/v1/chat/completions"))
        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
  }
}
