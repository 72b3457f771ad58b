package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.ByteString;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SchemaRegistryConfig;
import com.networknt.schema.SpecificationVersion;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;
import sphinxserve.structured.JsonSchemaGrammar;

/**
 * The structured module's JSON Schema corpus (real-world shapes, read from that module's test resources, not copied)
 * sent through a real node (gRPC on loopback, the engine and ONNX Runtime over the TEST bundle, whose random weights
 * make its free output noise) as {@code sampling.constraint.json_schema}: every answer that ends by EOS must parse
 * and pass an independent validator (networknt, formats asserted).
 *
 * <p>An answer may be cut by {@code max_tokens} only when the grammar cannot promise to end within it: its
 * {@link JsonSchemaGrammar#maxBytes} is empty (unbounded) or, since every token writes at least one byte and EOS
 * takes one more, larger than {@code MAX_TOKENS - 1}. A cut answer is a prefix of a document and is not validated.
 * Each schema varies the seed (its index), the temperature (0, 0.7, 1.2 cycling) and whether an image comes first
 * (every other schema).
 */
final class StructuredCorpusNodeTest {

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension();

  /** The corpus, relative to the server module (Maven's working directory for its tests). */
  private static final Path CORPUS = Path.of("../structured/src/test/resources/sphinxserve/structured/schemas");

  /** Leaves room in the TEST bundle's 1024-token context for the prompt, with or without an image. */
  private static final int MAX_TOKENS = 600;

  private static final float[] TEMPERATURES = {0f, 0.7f, 1.2f};

  private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private static final SchemaRegistry VALIDATORS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12,
      builder -> builder.schemaRegistryConfig(SchemaRegistryConfig.builder().formatAssertionsEnabled(true).build()));

  static Stream<Arguments> corpus() throws IOException {
    if (!Files.isDirectory(CORPUS)) {
      throw new IllegalStateException("the JSON Schema corpus is missing: expected " + CORPUS.toAbsolutePath().normalize()
          + " (the structured module's test resources, read relative to the server module)");
    }
    List<Path> files;
    try (Stream<Path> listed = Files.list(CORPUS)) {
      files = listed.filter(f -> f.getFileName().toString().endsWith(".json")).sorted().toList();
    }
    assertTrue(files.size() >= 50, "the corpus has only " + files.size() + " schemas in " + CORPUS);
    return IntStream.range(0, files.size()).mapToObj(i -> Arguments.of(i, files.get(i).getFileName().toString(), files.get(i)));
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("corpus")
  void everySchema_answerEndedByEosValidates(int index, String name, Path file) {
    String schemaText = read(file);
    JsonNode schema = assertDoesNotThrow(() -> JSON.readTree(schemaText), name + " is not JSON");
    OptionalLong maxBytes = JsonSchemaGrammar.maxBytes(schema);
    boolean mayBeCut = maxBytes.isEmpty() || maxBytes.getAsLong() > MAX_TOKENS - 1;
    float temperature = TEMPERATURES[index % TEMPERATURES.length];
    byte[] image = index % 2 == 1 ? TestImages.png(TestImages.noise(32, 24, index)) : null;

    List<GenerateResponse> responses = generate(ask("Fill in the form.", Constraint.newBuilder().setJsonSchema(schemaText).build(),
        index, temperature, image));
    String answer = text(responses);
    FinishReason finish = responses.getLast().getFinishReason();
    String where = name + " (seed " + index + ", temperature " + temperature + (image != null ? ", image" : "") + ", maxBytes "
        + (maxBytes.isPresent() ? maxBytes.getAsLong() : "unbounded") + ") finished " + finish + ": " + answer;

    if (finish == FinishReason.LENGTH) {
      assertTrue(mayBeCut, () -> "a schema bounded within max_tokens was cut: " + where);
      assertTrue(!answer.isEmpty(), () -> "a cut answer wrote nothing: " + where);
      return;
    }
    assertEquals(FinishReason.STOP, finish, where);
    assertDoesNotThrow(() -> JSON.readTree(answer), () -> "not JSON: " + where);
    List<com.networknt.schema.Error> errors = VALIDATORS.getSchema(schemaText, InputFormat.JSON).validate(answer, InputFormat.JSON);
    if (!errors.isEmpty()) {
      fail("the validator rejects " + where + "\n  " + errors);
    }
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static GenerateRequest ask(String question, Constraint constraint, long seed, float temperature, byte[] image) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(Content.newBuilder().setImage(ByteString.copyFrom(image)));
    SamplingParams sampling = SamplingParams.newBuilder().setMaxTokens(MAX_TOKENS).setSeed(seed).setTemperature(temperature)
        .setConstraint(constraint).build();
    return GenerateRequest.newBuilder().addMessages(user.addContent(Content.newBuilder().setText(question))).setSampling(sampling).build();
  }

  /** gRPC always streams: the answer is its deltas, in order. */
  private static List<GenerateResponse> generate(GenerateRequest request) {
    SphinxGrpc.SphinxBlockingStub stub = SphinxGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(120, TimeUnit.SECONDS);
    List<GenerateResponse> responses = new ArrayList<>();
    for (Iterator<GenerateResponse> it = stub.generate(request); it.hasNext(); ) responses.add(it.next());
    return responses;
  }

  private static String text(List<GenerateResponse> responses) {
    StringBuilder sb = new StringBuilder();
    responses.forEach(r -> sb.append(r.getText()));
    return sb.toString();
  }
}
