package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonSchemaLocalValidation;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.models.ResponseFormatJsonObject;
import com.openai.models.ResponseFormatJsonSchema;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.StructuredChatCompletion;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.server.testing.TestImages;
import sphinxserve.server.testing.TestNode;

/**
 * Structured outputs over HTTP, with the official OpenAI Java client against a real node (TEST bundle: SPHINX's
 * template, a vision encoder, random weights whose free output is noise): {@code response_format} json_schema (a Java
 * class's schema, the answer parsed back into the class) and json_object, vLLM's {@code structured_outputs} as raw
 * JSON, streamed and not, with an image and without; every answer is in the constraint's language whatever the model
 * prefers, and a bad constraint is a 400 naming the field the client sent.
 */
class OpenAiStructuredOutputTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final SchemaRegistry VALIDATORS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12);
  private static TestNode node;
  private static OpenAIClient openai;
  private static HttpClient http;

  /** A shape: a bounded enum, so every answer ends within a few tokens. */
  public enum Shape { CIRCLE, SQUARE, TRIANGLE }

  /** What the client's structured outputs turn into a JSON Schema and parse the answer back into. */
  public static final class Scene {
    public Shape shape;
    public boolean filled;
    public List<Shape> others;
  }

  @BeforeAll
  static void start() {
    node = TestNode.start();
    openai = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + node.node().httpPort() + "/v1").apiKey("unused")
        .maxRetries(0).timeout(Duration.ofSeconds(120)).build();
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
  }

  @AfterAll
  static void stop() {
    openai.close();
    node.close();
  }

  private static String dataUrl(long seed) {
    return "data:image/png;base64," + Base64.getEncoder().encodeToString(TestImages.png(TestImages.noise(32, 24, seed)));
  }

  /** A user turn: the question, after an image when {@code withImage}. */
  private static List<ChatCompletionContentPart> question(String text, boolean withImage, long seed) {
    List<ChatCompletionContentPart> parts = new ArrayList<>();
    if (withImage) {
      parts.add(ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
          .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(dataUrl(seed)).build()).build()));
    }
    parts.add(ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text(text).build()));
    return parts;
  }

  @Test
  void jsonSchema_fromAJavaClass_everyAnswerParsesIntoTheClass_withAndWithoutAnImage() {
    for (long seed = 0; seed < 4; seed++) {
      boolean withImage = seed % 2 == 1;
      StructuredChatCompletion<Scene> completion = openai.chat().completions().create(ChatCompletionCreateParams.builder()
          .model("test").addUserMessageOfArrayOfContentParts(question("Describe the scene", withImage, seed))
          .maxCompletionTokens(200).temperature(1.0).seed(seed)
          .responseFormat(Scene.class, JsonSchemaLocalValidation.YES).build());
      var choice = completion.choices().getFirst();
      assertEquals(ChatCompletion.Choice.FinishReason.STOP, choice.finishReason(), "a bounded schema's answer ends by itself");
      Scene scene = choice.message().content().orElseThrow(); // the client parsed the answer into the class
      assertTrue(scene.shape != null && scene.others != null, "required properties are present");
    }
  }

  @Test
  void jsonSchema_streamed_assemblesToTheSameValidAnswer_asNotStreamed() throws Exception {
    String schema = """
        {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}, "confidence": {"type": "integer", "minimum": 0, "maximum": 100}},
         "required": ["answer", "confidence"], "additionalProperties": false}""";
    Schema validator = VALIDATORS.getSchema(schema, InputFormat.JSON);
    ResponseFormatJsonSchema format = ResponseFormatJsonSchema.builder().jsonSchema(ResponseFormatJsonSchema.JsonSchema.builder()
        .name("verdict").strict(true).schema(ResponseFormatJsonSchema.JsonSchema.Schema.builder()
            .putAllAdditionalProperties(asMap(JSON.readTree(schema))).build()).build()).build();
    for (long seed = 0; seed < 3; seed++) {
      ChatCompletionCreateParams params = ChatCompletionCreateParams.builder().model("test")
          .addUserMessageOfArrayOfContentParts(question("Is it round?", seed == 1, seed))
          .maxCompletionTokens(100).temperature(1.0).seed(seed).responseFormat(format).build();
      String whole = openai.chat().completions().create(params).choices().getFirst().message().content().orElseThrow();
      assertEquals(List.of(), validator.validate(whole, InputFormat.JSON), whole);
      StringBuilder streamed = new StringBuilder();
      String finish = null;
      try (StreamResponse<ChatCompletionChunk> stream = openai.chat().completions().createStreaming(params)) {
        for (ChatCompletionChunk chunk : (Iterable<ChatCompletionChunk>) stream.stream()::iterator) {
          for (ChatCompletionChunk.Choice c : chunk.choices()) {
            c.delta().content().ifPresent(streamed::append);
            if (c.finishReason().isPresent()) finish = c.finishReason().get().asString();
          }
        }
      }
      assertEquals(whole, streamed.toString(), "the same seed gives the same answer, streamed or not");
      assertEquals("stop", finish);
    }
  }

  @Test
  void jsonObject_answerIsAJsonObject() throws Exception {
    for (long seed = 0; seed < 3; seed++) {
      ChatCompletion c = openai.chat().completions().create(ChatCompletionCreateParams.builder().model("test")
          .addUserMessageOfArrayOfContentParts(question("JSON please", seed == 2, seed)).maxCompletionTokens(700).temperature(1.0).seed(seed)
          .responseFormat(ResponseFormatJsonObject.builder().build()).build());
      String answer = c.choices().getFirst().message().content().orElseThrow();
      if (c.choices().getFirst().finishReason() == ChatCompletion.Choice.FinishReason.STOP) {
        assertTrue(JSON.readTree(answer).isObject(), answer);
      } else { // an object's strings are unbounded: the length limit may cut it, never anything but an object's prefix
        assertTrue(answer.startsWith("{"), answer);
      }
    }
  }

  @Test
  void vllmStructuredOutputs_choiceAndRegex_streamedAndNot_withAndWithoutAnImage() throws Exception {
    for (long seed = 0; seed < 4; seed++) {
      boolean stream = seed % 2 == 0;
      boolean withImage = seed >= 2;
      String image = withImage ? "{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + dataUrl(seed) + "\"}}, " : "";
      String messages = "[{\"role\": \"user\", \"content\": [" + image + "{\"type\": \"text\", \"text\": \"Is the circle yellow?\"}]}]";
      String choice = answer(post("{\"messages\": " + messages + ", \"seed\": " + seed + ", \"stream\": " + stream
          + ", \"structured_outputs\": {\"choice\": [\"yes\", \"no\", \"it is blue\"]}}"), stream);
      assertTrue(List.of("yes", "no", "it is blue").contains(choice), choice);
      String date = answer(post("{\"messages\": " + messages + ", \"seed\": " + seed + ", \"stream\": " + stream
          + ", \"structured_outputs\": {\"regex\": \"(19|20)\\\\d\\\\d-(0[1-9]|1[0-2])-[0-3]\\\\d\"}}"), stream);
      assertTrue(date.matches("(19|20)\\d\\d-(0[1-9]|1[0-2])-[0-3]\\d"), date);
    }
    // vLLM's older top-level field and /v1/completions take the same.
    String guided = answer(post("{\"messages\": [{\"role\": \"user\", \"content\": \"Pick\"}], \"guided_choice\": [\"left\", \"right\"]}"), false);
    assertTrue(List.of("left", "right").contains(guided), guided);
    HttpResponse<String> completion = post("/v1/completions", "{\"prompt\": \"The answer is\", \"max_tokens\": 20, "
        + "\"structured_outputs\": {\"grammar\": \"root ::= [1-9] [0-9]{0,2}\"}}");
    assertEquals(200, completion.statusCode(), completion.body());
    String number = JSON.readTree(completion.body()).path("choices").get(0).path("text").asText();
    assertTrue(number.matches("[1-9][0-9]{0,2}"), number);
  }

  @Test
  void refusals_nameTheFieldTheClientSent() throws Exception {
    // A compile error (an unsupported keyword) found past the translation is reported on the HTTP field.
    BadRequestException e = assertThrows(BadRequestException.class, () -> openai.chat().completions().create(
        ChatCompletionCreateParams.builder().model("test").addUserMessage("Age?").maxCompletionTokens(20)
            .responseFormat(ResponseFormatJsonSchema.builder().jsonSchema(ResponseFormatJsonSchema.JsonSchema.builder().name("age")
                .schema(ResponseFormatJsonSchema.JsonSchema.Schema.builder().putAdditionalProperty("type", JsonValue.from("integer"))
                    .putAdditionalProperty("multipleOf", JsonValue.from(7)).build()).build()).build()).build()));
    assertEquals("response_format.json_schema.schema", e.param().orElseThrow(), e.getMessage());
    assertTrue(e.getMessage().contains("multipleOf"), e.getMessage());

    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"structured_outputs\": {\"json\": {\"type\": \"string\", \"multipleOf\": 2}}}"),
        "structured_outputs.json", "multipleOf");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"structured_outputs\": {\"regex\": \"(a\"}}"),
        "structured_outputs.regex", "");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"structured_outputs\": {\"choice\": [\"a\", \"\"]}}"),
        "structured_outputs.choice[1]", "empty");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"guided_grammar\": \"root ::= missing\"}"),
        "guided_grammar", "");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_object\"}, "
        + "\"structured_outputs\": {\"choice\": [\"a\"]}}"), "structured_outputs", "cannot be combined with response_format");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"structured_outputs\": {\"choice\": [\"a\"], \"regex\": \"a\"}}"),
        "structured_outputs.choice", "cannot be combined with structured_outputs.regex");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"xml\"}}"),
        "response_format.type", "json_schema");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"structured_outputs\": {\"whitespace_pattern\": \" \"}}"),
        "structured_outputs.whitespace_pattern", "not supported");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_object\"}, \"ignore_eos\": true}"),
        "ignore_eos", "constraint");
    // A refusal of the shared path names the field as sent, not its gRPC name.
    assertRefused(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": 5000}"),
        "max_completion_tokens", "context");
    // SPHINX's fixed template takes no tools.
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}"),
        "tools", "takes no tools");
    assertRefused(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"functions\": [{\"name\": \"f\"}]}"), "functions", "tools");

    // The node keeps serving constrained requests after refusing these.
    assertEquals("ok", answer(post("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"structured_outputs\": {\"choice\": [\"ok\"]}}"), false));
  }

  private static void assertRefused(HttpResponse<String> response, String param, String inMessage) throws Exception {
    assertEquals(400, response.statusCode(), response.body());
    JsonNode error = JSON.readTree(response.body()).path("error");
    assertEquals(param, error.path("param").asText(), response.body());
    assertTrue(error.path("message").asText().startsWith(param + ": "), response.body());
    assertTrue(error.path("message").asText().contains(inMessage), response.body());
  }

  /** The answer's text, from one body or assembled from the stream's deltas. */
  private static String answer(HttpResponse<String> response, boolean stream) throws Exception {
    assertEquals(200, response.statusCode(), response.body());
    if (!stream) return JSON.readTree(response.body()).path("choices").get(0).path("message").path("content").asText();
    StringBuilder text = new StringBuilder();
    boolean done = false;
    for (String line : response.body().split("\n")) {
      if (!line.startsWith("data: ")) continue;
      if (line.equals("data: [DONE]")) {
        done = true;
        continue;
      }
      JsonNode delta = JSON.readTree(line.substring(6)).path("choices").get(0).path("delta");
      if (delta.path("content").isTextual()) text.append(delta.path("content").asText());
    }
    assertTrue(done, response.body());
    return text.toString();
  }

  private static HttpResponse<String> post(String body) throws Exception {
    return post("/v1/chat/completions", body.replaceFirst("^\\{", "{\"max_tokens\": 60, \"temperature\": 1.0, "));
  }

  private static HttpResponse<String> post(String path, String body) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.node().httpPort() + path))
        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  @SuppressWarnings("unchecked")
  private static Map<String, JsonValue> asMap(JsonNode object) {
    Map<String, JsonValue> out = new java.util.LinkedHashMap<>();
    object.fields().forEachRemaining(e -> out.put(e.getKey(), JsonValue.from(JSON.convertValue(e.getValue(), Object.class))));
    assertFalse(out.isEmpty());
    return out;
  }
}
