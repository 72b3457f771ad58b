package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.networknt.schema.Error;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SchemaRegistryConfig;
import com.networknt.schema.SpecificationVersion;
import java.util.List;
import java.util.OptionalLong;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Property test over the schema corpus ({@code schemas/*.json}, real-world shapes): under each schema's grammar,
 * compiled over the bench bundle's real 32k vocabulary, a noise model (random allowed tokens, several seeds) must
 * always reach EOS, and what it wrote must parse as JSON and pass an independent validator
 * (networknt json-schema-validator, formats asserted). Where the schema is bounded, the output must also fit
 * {@link JsonSchemaGrammar#maxBytes} — the walks of seed 0 pick purely uniformly, so that bound, not a bias, is what
 * ends them.
 */
class JsonSchemaCorpusTest {
  /** Walks per schema. */
  private static final int NUM_SEEDS = 6;

  /** Longest walk of a schema without a byte bound, in tokens, before calling it a runaway. */
  private static final int MAX_TOKENS_UNBOUNDED = 20_000;

  private static final SchemaRegistry VALIDATORS = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12,
      builder -> builder.schemaRegistryConfig(SchemaRegistryConfig.builder().formatAssertionsEnabled(true).build()));

  static Stream<SchemaTesting.CorpusSchema> corpus() {
    return SchemaTesting.corpus();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("corpus")
  void randomWalks_everySchema_endAndValidate(SchemaTesting.CorpusSchema entry) {
    JsonSchemaGrammar.Conversion conversion = JsonSchemaGrammar.convert(entry.schema());
    CompiledGrammar grammar = Grammars.compile(Grammar.gbnf(conversion.gbnf()), RealVocabulary.get());
    Schema validator = VALIDATORS.getSchema(entry.text(), InputFormat.JSON);
    OptionalLong maxBytes = conversion.maxBytes();
    for (int seed = 0; seed < NUM_SEEDS; seed++) {
      boolean uniform = seed == 0 && maxBytes.isPresent();
      int maxTokens = maxBytes.isPresent() ? (int) Math.min(Integer.MAX_VALUE, maxBytes.getAsLong() + 1) : MAX_TOKENS_UNBOUNDED;
      RandomWalk.Result walk = RandomWalk.run(grammar, RealVocabulary.get(), new Random(seed), maxTokens, uniform ? 0 : 0.5);
      String where = entry.name() + " seed " + seed + ": " + walk.text();
      assertTrue(walk.ended(), () -> "no EOS within " + maxTokens + " tokens: " + where);
      assertDoesNotThrow(() -> SchemaTesting.JSON.readTree(walk.text()), () -> "not JSON: " + where);
      List<Error> errors = validator.validate(walk.text(), InputFormat.JSON);
      if (!errors.isEmpty()) {
        fail("validator rejects " + where + "\n  " + errors);
      }
      if (maxBytes.isPresent()) {
        assertTrue(walk.numBytes() <= maxBytes.getAsLong(),
            () -> walk.numBytes() + " bytes, over maxBytes " + maxBytes.getAsLong() + ": " + where);
      }
    }
  }

  /** Random schemas ({@link RandomSchemas}): the same property, over keyword combinations nobody wrote by hand. */
  @org.junit.jupiter.api.Test
  void randomWalks_randomSchemas_endAndValidate() throws Exception {
    for (int seed = 0; seed < 150; seed++) {
      com.fasterxml.jackson.databind.JsonNode schema = new RandomSchemas(seed).next(3);
      String text = SchemaTesting.JSON.writeValueAsString(schema);
      JsonSchemaGrammar.Conversion conversion = JsonSchemaGrammar.convert(schema);
      CompiledGrammar grammar = Grammars.compile(Grammar.gbnf(conversion.gbnf()), RealVocabulary.get());
      Schema validator = VALIDATORS.getSchema(text, InputFormat.JSON);
      OptionalLong maxBytes = conversion.maxBytes();
      for (int walkSeed = 0; walkSeed < 2; walkSeed++) {
        boolean uniform = walkSeed == 0 && maxBytes.isPresent();
        int maxTokens = maxBytes.isPresent() ? (int) maxBytes.getAsLong() + 1 : MAX_TOKENS_UNBOUNDED;
        RandomWalk.Result walk = RandomWalk.run(grammar, RealVocabulary.get(), new Random(seed * 31L + walkSeed),
            maxTokens, uniform ? 0 : 0.5);
        String where = "schema " + text + "\n  output " + walk.text();
        assertTrue(walk.ended(), () -> "no EOS: " + where);
        if (maxBytes.isPresent()) {
          assertTrue(walk.numBytes() <= maxBytes.getAsLong(), () -> "over maxBytes " + maxBytes + ": " + where);
        }
        List<Error> errors = validator.validate(walk.text(), InputFormat.JSON);
        if (!errors.isEmpty()) {
          fail("validator rejects " + where + "\n  " + errors);
        }
      }
    }
  }

  @org.junit.jupiter.api.Test
  void corpus_atLeastFiftySchemas_mostBounded() {
    List<SchemaTesting.CorpusSchema> all = SchemaTesting.corpus().toList();
    long bounded = all.stream().filter(e -> JsonSchemaGrammar.maxBytes(e.schema()).isPresent()).count();
    assertTrue(all.size() >= 50, "corpus has " + all.size() + " schemas");
    assertTrue(bounded * 2 > all.size(), "only " + bounded + " of " + all.size() + " corpus schemas are bounded");
  }
}
