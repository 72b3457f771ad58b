package sphinxserve.structured;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/** Shared fixtures of the JSON Schema grammar tests: the corpus, a byte-level vocabulary, membership checks. */
final class SchemaTesting {
  /** Strict JSON reading: trailing content after the value is an error. */
  static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  /** Id of the end-of-output token in {@link #BYTES}. */
  static final int BYTE_EOS = 256;

  /** One token per byte value, plus EOS: every byte string is spellable, so it tests a grammar's language. */
  static final TokenVocabulary BYTES = byteVocabulary();

  private SchemaTesting() {}

  private static TokenVocabulary byteVocabulary() {
    List<byte[]> tokens = new ArrayList<>();
    for (int b = 0; b < 256; b++) {
      tokens.add(new byte[] {(byte) b});
    }
    tokens.add(new byte[0]);
    return TokenVocabulary.of(tokens, List.of(BYTE_EOS));
  }

  /** Whether the grammar's language holds {@code text} exactly (the whole text, then EOS). */
  static boolean accepts(CompiledGrammar grammar, String text) {
    GrammarMatcher matcher = grammar.newMatcher();
    return matcher.acceptBytes(text.getBytes(StandardCharsets.UTF_8)) && matcher.accept(BYTE_EOS);
  }

  /** {@code gbnf} compiled over {@link #BYTES}. */
  static CompiledGrammar overBytes(String gbnf) {
    return Grammars.compile(Grammar.gbnf(gbnf), BYTES);
  }

  /** A schema's grammar compiled over {@link #BYTES}. */
  static CompiledGrammar overBytes(JsonNode schema) {
    return overBytes(JsonSchemaGrammar.gbnf(schema));
  }

  /** Parses JSON text written in tests (single quotes stand for double quotes). */
  static JsonNode json(String text) {
    try {
      return JSON.readTree(text.replace('\'', '"'));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A test resource of this package as text. */
  static String resource(String name) {
    try (InputStream in = SchemaTesting.class.getResourceAsStream(name)) {
      if (in == null) {
        throw new IllegalStateException("missing test resource " + name);
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** One schema of the corpus. */
  record CorpusSchema(String name, String text, JsonNode schema) {
    @Override
    public String toString() {
      return name;
    }
  }

  /** The corpus: every {@code schemas/*.json}, sorted by name. */
  static Stream<CorpusSchema> corpus() {
    URL dir = SchemaTesting.class.getResource("schemas");
    if (dir == null) {
      throw new IllegalStateException("missing test resource directory schemas/");
    }
    try (Stream<Path> files = Files.list(Path.of(dir.toURI()))) {
      List<CorpusSchema> out = new ArrayList<>();
      for (Path file : files.filter(f -> f.toString().endsWith(".json")).sorted().toList()) {
        String text = Files.readString(file);
        String name = file.getFileName().toString().replace(".json", "");
        out.add(new CorpusSchema(name, text, JSON.readTree(text)));
      }
      return out.stream();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }
}
