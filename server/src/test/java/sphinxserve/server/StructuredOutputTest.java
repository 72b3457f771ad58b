package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.ByteString;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SchemaRegistryConfig;
import com.networknt.schema.SpecificationVersion;
import dev.sphinxserve.proto.v1.Choices;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import sphinxserve.client.outputs.ParsedAnswer;
import sphinxserve.client.outputs.SphinxOutputs;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/**
 * Constrained decoding through a real node (gRPC on loopback, the engine and ONNX Runtime over the TEST bundle, whose
 * random weights make its free output noise): whatever the model prefers, a constrained answer is in the language.
 */
final class StructuredOutputTest {

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension();

  private static final String PERSON = """
      {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}}, "required": ["city"]}},
       "required": ["name", "age", "address"]}""";

  private static final SchemaRegistry VALIDATORS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12,
      builder -> builder.schemaRegistryConfig(SchemaRegistryConfig.builder().formatAssertionsEnabled(true).build()));

  private static SphinxGrpc.SphinxBlockingStub stub() {
    return SphinxGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(120, TimeUnit.SECONDS);
  }

  private static GenerateRequest ask(String question, SamplingParams sampling, byte[] image) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(Content.newBuilder().setImage(ByteString.copyFrom(image)));
    return GenerateRequest.newBuilder().addMessages(user.addContent(Content.newBuilder().setText(question))).setSampling(sampling).build();
  }

  private static List<GenerateResponse> generate(GenerateRequest request) {
    List<GenerateResponse> responses = new ArrayList<>();
    for (Iterator<GenerateResponse> it = stub().generate(request); it.hasNext(); ) responses.add(it.next());
    return responses;
  }

  private static String text(List<GenerateResponse> responses) {
    StringBuilder sb = new StringBuilder();
    responses.forEach(r -> sb.append(r.getText()));
    return sb.toString();
  }

  private static SamplingParams sampling(Constraint constraint, long seed, float temperature) {
    return SamplingParams.newBuilder().setMaxTokens(400).setSeed(seed).setTemperature(temperature).setConstraint(constraint).build();
  }

  @ParameterizedTest
  @ValueSource(floats = {0f, 0.7f, 1.5f})
  void jsonSchema_everyAnswerValidates_withAndWithoutAnImage(float temperature) throws Exception {
    Schema validator = VALIDATORS.getSchema(PERSON, InputFormat.JSON);
    Constraint constraint = Constraint.newBuilder().setJsonSchema(PERSON).build();
    for (long seed = 0; seed < 4; seed++) {
      byte[] image = seed % 2 == 0 ? null : TestImages.png(TestImages.noise(32, 24, seed));
      List<GenerateResponse> responses = generate(ask("Who?", sampling(constraint, seed, temperature), image));
      String answer = text(responses);
      assertEquals(FinishReason.STOP, responses.getLast().getFinishReason(), "a bounded schema's answer ends by itself: " + answer);
      new ObjectMapper().readTree(answer);
      assertEquals(List.of(), validator.validate(answer, InputFormat.JSON), answer);
    }
  }

  /** Any JSON object has unbounded strings: an answer ended by EOS is an object, one cut by max_tokens begins one. */
  @Test
  void jsonObject_answerIsAnObject() throws Exception {
    for (long seed = 0; seed < 3; seed++) {
      List<GenerateResponse> responses = generate(ask("JSON please", sampling(Constraint.newBuilder().setJsonObject(true).build(), seed, 1f)
          .toBuilder().setMaxTokens(800).build(), null));
      String answer = text(responses);
      if (responses.getLast().getFinishReason() == FinishReason.STOP) {
        assertTrue(new ObjectMapper().readTree(answer).isObject(), answer);
      } else {
        assertTrue(answer.startsWith("{"), answer);
      }
    }
  }

  @Test
  void regexChoiceAndGrammar_answersAreInTheLanguage() {
    for (long seed = 0; seed < 4; seed++) {
      String date = text(generate(ask("When?", sampling(Constraint.newBuilder().setRegex("(19|20)\\d\\d-(0[1-9]|1[0-2])-[0-3]\\d").build(), seed, 1f), null)));
      assertTrue(date.matches("(19|20)\\d\\d-(0[1-9]|1[0-2])-[0-3]\\d"), date);
      String choice = text(generate(ask("Yes?", sampling(Constraint.newBuilder().setChoice(Choices.newBuilder().addValues("yes").addValues("no")
          .addValues("maybe not")).build(), seed, 1.5f), null)));
      assertTrue(List.of("yes", "no", "maybe not").contains(choice), choice);
      String sum = text(generate(ask("Sum?", sampling(Constraint.newBuilder().setGrammar("root ::= num (\" + \" num){1,3}\nnum ::= [1-9] [0-9]{0,2}").build(), seed, 1f), null)));
      assertTrue(sum.matches("[1-9][0-9]{0,2}( \\+ [1-9][0-9]{0,2}){1,3}"), sum);
    }
  }

  @Test
  void grounded_everyBoxAndKeypointParses() {
    byte[] image = TestImages.png(TestImages.noise(40, 30, 7));
    for (long seed = 0; seed < 4; seed++) {
      String answer = text(generate(ask("Detect all people.", sampling(Constraint.newBuilder().setGrounded(true).build(), seed, 1f)
          .toBuilder().setMaxTokens(120).build(), image)));
      ParsedAnswer parsed = SphinxOutputs.parse(answer);
      assertEquals(List.of(), parsed.skipped(), answer);
    }
  }

  @Test
  void maskOnlyRemoves_aChoiceHoldingTheFreeGreedyAnswer_givesTheSameTokens() {
    SamplingParams free = SamplingParams.newBuilder().setMaxTokens(6).build();
    List<GenerateResponse> unconstrained = generate(ask("Hello", free, null));
    String freeText = text(unconstrained);
    assertNotEquals("", freeText);
    Constraint choice = Constraint.newBuilder().setChoice(Choices.newBuilder().addValues(freeText).addValues("zz" + freeText)).build();
    List<GenerateResponse> constrained = generate(ask("Hello", free.toBuilder().setMaxTokens(7).setConstraint(choice).build(), null));
    assertEquals(freeText, text(constrained));
    assertEquals(unconstrained.stream().flatMap(r -> r.getTokenIdsList().stream()).toList(),
        constrained.stream().flatMap(r -> r.getTokenIdsList().stream()).toList().subList(0, unconstrained.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum()));
  }

  @Test
  void unsupportedKeyword_isRefusedNamingItsPath() {
    String schema = "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"number\", \"multipleOf\": 3}}}";
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> generate(ask("x", sampling(Constraint.newBuilder().setJsonSchema(schema).build(), 1, 0), null)));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().startsWith("sampling.constraint.json_schema: #/properties/n/multipleOf"), e.getStatus().getDescription());
  }

  @Test
  void badRegexAndGrammar_areRefusedNamingTheField() {
    StatusRuntimeException regex = assertThrows(StatusRuntimeException.class,
        () -> generate(ask("x", sampling(Constraint.newBuilder().setRegex("(a)\\1").build(), 1, 0), null)));
    assertTrue(regex.getStatus().getDescription().startsWith("sampling.constraint.regex: "), regex.getStatus().getDescription());
    StatusRuntimeException grammar = assertThrows(StatusRuntimeException.class,
        () -> generate(ask("x", sampling(Constraint.newBuilder().setGrammar("root ::= undefined-rule").build(), 1, 0), null)));
    assertTrue(grammar.getStatus().getDescription().startsWith("sampling.constraint.grammar: "), grammar.getStatus().getDescription());
  }
}
