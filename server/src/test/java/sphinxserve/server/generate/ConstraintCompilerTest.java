package sphinxserve.server.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.networknt.schema.InputFormat;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.Tool;
import dev.sphinxserve.proto.v1.ToolChoice;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import sphinxserve.api.TokenConstraint;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;
import sphinxserve.structured.TokenVocabulary;

/**
 * The constraints the request path compiles, walked over the TEST bundle's real tokenizer by a "model" that picks
 * uniformly among the allowed tokens (noise held to the constraint): tool calls always parse, name a requested
 * tool and carry arguments its schema accepts; compiles are cached; refusals name the field.
 */
final class ConstraintCompilerTest {

  private static TokenVocabulary vocabulary;
  private static ConstraintCompiler compiler;

  private static final String WEATHER = """
      {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
        "unit": {"enum": ["c", "f"]}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city"]}""";
  /** A schema with a local $ref, which must resolve inside the tool's own schema. */
  private static final String ROUTE = """
      {"type": "object", "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9},
        "y": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["x", "y"]}},
       "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/$defs/point"}}, "required": ["from", "to"]}""";

  @BeforeAll
  static void load() throws IOException {
    var bundle = TestBundles.get(BundlePreset.TEST);
    HfTextTokenizer tokenizer = HfTextTokenizer.load(bundle.tokenizerFile());
    vocabulary = TokenVocabulary.of(tokenizer, bundle.spec().specialTokens().eosIds());
    compiler = new ConstraintCompiler(() -> vocabulary);
  }

  /** Picks uniformly among allowed tokens (EOS with a fair chance once allowed) until EOS; the bytes produced. */
  private static String walk(TokenConstraint constraint, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    TokenConstraint.Matcher matcher = constraint.newMatcher();
    long[] bits = new long[vocabulary.numWords()];
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int step = 0; step < 4000; step++) {
      matcher.fillAllowed(bits);
      int[] allowed = java.util.stream.IntStream.range(0, vocabulary.size()).filter(id -> (bits[id >>> 6] & (1L << id)) != 0).toArray();
      assertTrue(allowed.length > 0, "a dead end after " + out.toString(StandardCharsets.UTF_8));
      int eos = -1;
      for (int id : allowed) if (vocabulary.isEos(id)) eos = id;
      int id = eos >= 0 && random.nextInt(4) == 0 ? eos : allowed[random.nextInt(allowed.length)];
      if (vocabulary.isEos(id)) return out.toString(StandardCharsets.UTF_8);
      assertTrue(matcher.accept(id));
      out.writeBytes(vocabulary.tokenBytes(id));
    }
    throw new AssertionError("no EOS after 4000 tokens: " + out.toString(StandardCharsets.UTF_8));
  }

  private static GenerateRequest toolRequest(ToolChoice choice, Boolean parallel) {
    GenerateRequest.Builder b = GenerateRequest.newBuilder()
        .addTools(Tool.newBuilder().setName("get_weather").setParameters(WEATHER))
        .addTools(Tool.newBuilder().setName("route").setParameters(ROUTE))
        .addTools(Tool.newBuilder().setName("now"))
        .setToolChoice(choice);
    if (parallel != null) b.setParallelToolCalls(parallel);
    return b.build();
  }

  private static void assertValidCalls(List<ToolCallStream.Call> calls, List<String> names) {
    var registry = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12);
    for (ToolCallStream.Call call : calls) {
      assertTrue(names.contains(call.name()), call.name());
      String schema = switch (call.name()) {
        case "get_weather" -> WEATHER;
        case "route" -> ROUTE;
        default -> "{\"type\": \"object\", \"maxProperties\": 0}"; // a tool without parameters takes {}
      };
      assertEquals(List.of(), registry.getSchema(schema, InputFormat.JSON).validate(call.arguments(), InputFormat.JSON), call.arguments());
    }
  }

  @Test
  void toolChoiceRequired_hermes_everyWalkIsOneOrMoreValidCalls() {
    TokenConstraint constraint = compiler.compile(toolRequest(ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED).build(), null),
        ToolCallStream.Syntax.HERMES);
    int most = 0;
    for (long seed = 0; seed < 30; seed++) {
      String answer = walk(constraint, seed);
      ToolCallStream stream = new ToolCallStream(ToolCallStream.Syntax.HERMES);
      stream.push(answer);
      stream.finish();
      assertFalse(stream.calls().isEmpty(), answer);
      assertEquals("", stream.content().strip(), answer);
      assertValidCalls(stream.calls(), List.of("get_weather", "route", "now"));
      most = Math.max(most, stream.calls().size());
    }
    assertTrue(most > 1, "parallel calls are allowed by default");
  }

  @Test
  void namedFunction_llamaJson_onlyThatTool_oneCall() {
    TokenConstraint constraint = compiler.compile(toolRequest(ToolChoice.newBuilder().setMode(ToolChoice.Mode.FUNCTION)
        .setFunctionName("route").build(), null), ToolCallStream.Syntax.LLAMA_JSON);
    for (long seed = 0; seed < 20; seed++) {
      String answer = walk(constraint, seed);
      ToolCallStream stream = new ToolCallStream(ToolCallStream.Syntax.LLAMA_JSON);
      stream.push(answer);
      stream.finish();
      assertEquals(1, stream.calls().size(), answer);
      assertValidCalls(stream.calls(), List.of("route"));
    }
  }

  @Test
  void requiredWithoutParallelCalls_isOneCall() {
    TokenConstraint constraint = compiler.compile(toolRequest(ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED).build(), false),
        ToolCallStream.Syntax.HERMES);
    for (long seed = 0; seed < 10; seed++) {
      ToolCallStream stream = new ToolCallStream(ToolCallStream.Syntax.HERMES);
      stream.push(walk(constraint, seed));
      stream.finish();
      assertEquals(1, stream.calls().size());
    }
  }

  @Test
  void sameConstraintTwice_compilesOnce() {
    GenerateRequest request = GenerateRequest.newBuilder().setSampling(SamplingParams.newBuilder()
        .setConstraint(Constraint.newBuilder().setJsonSchema(WEATHER))).build();
    long misses = compiler.stats().missCount();
    TokenConstraint first = compiler.compile(request, null);
    TokenConstraint second = compiler.compile(request, null);
    assertSame(first, second);
    assertEquals(misses + 1, compiler.stats().missCount());
  }

  @Test
  void refusals_nameTheFieldAndAreCachedToo() {
    GenerateRequest bad = GenerateRequest.newBuilder().setSampling(SamplingParams.newBuilder()
        .setConstraint(Constraint.newBuilder().setJsonSchema("{\"type\": \"string\", \"contentEncoding\": \"base64\"}"))).build();
    RequestException e = assertThrows(RequestException.class, () -> compiler.compile(bad, null));
    assertTrue(e.getMessage().startsWith("sampling.constraint.json_schema: #/contentEncoding"), e.getMessage());
    long misses = compiler.stats().missCount();
    assertThrows(RequestException.class, () -> compiler.compile(bad, null));
    assertEquals(misses, compiler.stats().missCount(), "the refusal came from the cache");
    GenerateRequest badTool = GenerateRequest.newBuilder().addTools(Tool.newBuilder().setName("f").setParameters("{\"type\": \"object\", \"not\": {}}"))
        .setToolChoice(ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED)).build();
    RequestException t = assertThrows(RequestException.class, () -> compiler.compile(badTool, ToolCallStream.Syntax.HERMES));
    assertTrue(t.getMessage().startsWith("tools[0].parameters: #/not"), t.getMessage());
  }
}
