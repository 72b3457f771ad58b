package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.TokenConstraint;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;
import sphinxserve.structured.Grammar;
import sphinxserve.structured.Grammars;
import sphinxserve.structured.TokenVocabulary;

/**
 * Constrained decoding on the real ONNX runtime: the {@code test} bundle's random weights produce noise when
 * free, and under a grammar always produce a sentence of it, ended by EOS, with or without an image.
 */
class ConstrainedOnnxTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** A JSON object with bounded strings, numbers and whitespace, as a JSON-Schema grammar would be. */
  private static final String PERSON_GBNF = """
      root ::= "{" ws "\\"name\\"" ws ":" ws string "," ws "\\"age\\"" ws ":" ws integer "," ws "\\"tags\\"" ws ":" ws tags ws "}"
      ws ::= | " " | "\\n" [ \\t]{0,4}
      string ::= "\\"" ([^"\\\\\\x00-\\x1F] | "\\\\" ["\\\\/bfnrt]){0,24} "\\""
      integer ::= "-"? ([0-9] | [1-9] [0-9]{0,8})
      tags ::= "[" ws (string (ws "," ws string){0,3})? ws "]"
      """;

  private static final String BOX = "(0\\.\\d\\d|1\\.00)";
  private static final String BOXES = "\\[" + BOX + "," + BOX + "," + BOX + "," + BOX + "\\](;\\[" + BOX + "," + BOX + "," + BOX + "," + BOX + "\\]){0,2}";

  private final Bundle bundle = TestBundles.get(BundlePreset.TEST);
  private final ModelSpec spec = bundle.spec();
  private final List<AutoCloseable> opened = new ArrayList<>();
  private OnnxModelRuntime runtime;
  private Engine engine;
  private TokenVocabulary vocabulary;

  @BeforeEach
  void start() {
    KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(spec, 16, 512));
    runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage);
    engine = new Engine(runtime, new KvCacheManager(storage), EngineConfig.defaults()).start();
    opened.add(0, storage);
    opened.add(0, runtime);
    opened.add(0, engine);
    vocabulary = TokenVocabulary.of(runtime.tokenizer(), spec.specialTokens().eosIds());
  }

  @AfterEach
  void close() throws Exception {
    for (AutoCloseable c : opened) c.close();
    opened.clear();
  }

  @Test
  void jsonGrammar_everyAnswerParses_overSeedsTemperaturesAndImages() throws Exception {
    TokenConstraint person = Grammars.compile(Grammar.gbnf(PERSON_GBNF), vocabulary);
    List<CollectingSink> sinks = new ArrayList<>();
    float[] temperatures = {0f, 0.7f, 1f, 1.5f};
    for (int i = 0; i < 16; i++) {
      SamplingParams params = SamplingParams.builder().maxTokens(400).temperature(temperatures[i % 4]).seed(i)
          .constraint(person).build();
      sinks.add(submit("json" + i, i, params));
    }
    for (int i = 0; i < sinks.size(); i++) {
      CollectingSink sink = sinks.get(i).await();
      String text = sink.textNow();
      assertEquals(FinishReason.STOP, sink.reason, "answer " + i + " ended by EOS: " + text);
      JsonNode parsed = JSON.readTree(text);
      assertTrue(parsed.get("name").isTextual() && parsed.get("age").isIntegralNumber() && parsed.get("tags").isArray(), text);
    }
  }

  @Test
  void boxRegex_everyAnswerIsBoxes_andGreedyFreeOutputIsNot() throws Exception {
    TokenConstraint boxes = Grammars.compile(Grammar.regex(BOXES), vocabulary);
    Pattern language = Pattern.compile(BOXES);
    String free = submit("free", 1, SamplingParams.builder().maxTokens(24).temperature(0).build()).await().textNow();
    assertTrue(!language.matcher(free).matches(), "the random model's free answer is noise: " + free);
    for (int i = 0; i < 8; i++) {
      SamplingParams params = SamplingParams.builder().maxTokens(120).temperature(i % 2 == 0 ? 0f : 1.2f).seed(i).constraint(boxes).build();
      CollectingSink sink = submit("box" + i, i, params).await();
      assertEquals(FinishReason.STOP, sink.reason);
      assertTrue(language.matcher(sink.textNow()).matches(), sink.textNow());
    }
  }

  @Test
  void greedy_whenTheFreeAnswerIsInTheLanguage_isUnchanged() throws Exception {
    SamplingParams greedy = SamplingParams.builder().maxTokens(6).temperature(0).build();
    int numCompared = 0;
    for (int i = 0; i < 40 && numCompared < 3; i++) {
      CollectingSink free = submit("free" + i, i, greedy).await();
      String text = validText(free.tokenArray());
      if (free.reason != FinishReason.LENGTH || text == null) continue; // a grammar describes text, not stray bytes
      // The language holds the free answer and one unlikely alternative: the mask removes nearly every token.
      TokenConstraint constraint = Grammars.compile(Grammar.choice(List.of(text, "[0.10,0.20,0.30,0.40]")), vocabulary);
      CollectingSink constrained = submit("constrained" + i, i, greedy.toBuilder().constraint(constraint).build()).await();
      assertArrayEquals(free.tokenArray(), constrained.tokenArray(), "prompt " + i);
      numCompared++;
    }
    assertTrue(numCompared >= 3, "free answers that are whole text: " + numCompared);
  }

  /** The tokens' bytes as text when they are all ordinary tokens and valid UTF-8; otherwise null. */
  private String validText(int[] tokens) {
    java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    for (int id : tokens) {
      byte[] b = runtime.tokenizer().tokenBytes(id);
      if (b.length == 0) return null;
      bytes.writeBytes(b);
    }
    try {
      return java.nio.charset.StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes.toByteArray())).toString();
    } catch (java.nio.charset.CharacterCodingException e) {
      return null;
    }
  }

  private CollectingSink submit(String id, int i, SamplingParams params) {
    CollectingSink sink = new CollectingSink();
    ImageEmbeddings image = image(i);
    int[] prompt = prompt(i);
    EngineRequest request = new EngineRequest(id, prompt, image, image == null ? 0 : IMAGE_START, params, 0, Long.MAX_VALUE, null, sink);
    assertInstanceOf(Engine.Admission.Accepted.class, engine.submit(request));
    return sink;
  }

  private static final int IMAGE_START = 5;

  private int[] prompt(int i) {
    return OnnxTestRequests.prompt(spec, i, IMAGE_START, 3 + i);
  }

  private ImageEmbeddings image(int i) {
    return OnnxTestRequests.image(spec, i);
  }
}
