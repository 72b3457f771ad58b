package sphinxserve.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HfTextTokenizerTest {

  private static final List<String> TEXTS = List.of(
      "",
      "Detect all people shown in image and provide correspondence bounding boxes coordinate.",
      "<p>person</p> [0.45,0.20,0.63,0.74]; [0.12,0.31,0.25,0.88]",
      "nose[0.65,0.26] left eye[0.45,0.23]",
      "A chat between a curious human and an artificial intelligence assistant.\n\n### Human: Hi\n### Assistant:",
      "Café déjà vu — naïve résumé",
      "中文字符测试，图像中的人",
      "emoji 😀👍🏽 and a lone tab\tand   three spaces  \n\n  ",
      "unknown pseudo words: zqxj vvvv Ωμέγα");

  private static HfTextTokenizer tokenizer;

  @BeforeAll
  static void load(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("tokenizer.json");
    Files.write(file, BundleTokenizers.buildBytes(2_000, BundleTokenizers.DEFAULT_SPECIAL_TOKENS, 7));
    tokenizer = HfTextTokenizer.load(dir);
  }

  @AfterAll
  static void close() {
    tokenizer.close();
  }

  @Test
  void encodeDecode_arbitraryText_roundTrips() {
    for (String text : TEXTS) {
      assertEquals(text, tokenizer.decode(tokenizer.encode(text)));
    }
    SplittableRandom random = new SplittableRandom(3);
    for (int n = 0; n < 200; n++) {
      StringBuilder sb = new StringBuilder();
      for (int i = random.nextInt(40); i > 0; i--) {
        int cp;
        do {
          cp = random.nextInt(4) == 0 ? random.nextInt(0x110000) : random.nextInt(0x20, 0x7F);
        } while (!Character.isDefined(cp) || Character.getType(cp) == Character.SURROGATE || Character.getType(cp) == Character.PRIVATE_USE);
        sb.appendCodePoint(cp);
      }
      String text = sb.toString();
      assertEquals(text, tokenizer.decode(tokenizer.encode(text)));
    }
  }

  @Test
  void tokenBytes_ofEncoding_concatenateToUtf8() throws Exception {
    for (String text : TEXTS) {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      for (int id : tokenizer.encode(text)) {
        bytes.write(tokenizer.tokenBytes(id));
      }
      assertArrayEquals(text.getBytes(StandardCharsets.UTF_8), bytes.toByteArray(), text);
    }
  }

  @Test
  void encode_specialTokenText_isOrdinaryText() {
    for (String text : List.of("<image>", "</s>", "<s> hello <pad><unk>", "look: <image>\n")) {
      int[] ids = tokenizer.encode(text);
      for (int id : ids) {
        assertFalse(tokenizer.isSpecial(id), () -> "special id from text '" + text + "'");
      }
      assertEquals(text, tokenizer.decode(ids));
    }
  }

  @Test
  void decode_skipsSpecialTokens() {
    int[] hello = tokenizer.encode(" hello");
    int[] ids = new int[hello.length + 3];
    ids[0] = 1; // <s>
    ids[1] = 4; // <image>
    System.arraycopy(hello, 0, ids, 2, hello.length);
    ids[ids.length - 1] = 2; // </s>
    assertEquals(" hello", tokenizer.decode(ids));
  }

  @Test
  void encode_longText_notTruncated() {
    String text = "the person on the left ".repeat(400);
    int[] ids = tokenizer.encode(text);
    assertTrue(ids.length > 512, "DJL's default truncation at 512 must be off");
    assertEquals(text, tokenizer.decode(ids));
  }

  @Test
  void ids_outOfRange_rejected() {
    assertThrows(IllegalArgumentException.class, () -> tokenizer.tokenBytes(2_000));
    assertThrows(IllegalArgumentException.class, () -> tokenizer.tokenBytes(-1));
    assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {5, 2_000}));
  }

  @Test
  void encode_concurrentCallers_agree() throws Exception {
    String text = "A person is holding a red umbrella [0.10,0.25,0.48,0.90] 中文 😀";
    int[] expected = tokenizer.encode(text);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<Boolean>> results = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        results.add(pool.submit(() -> {
          for (int i = 0; i < 500; i++) {
            if (!java.util.Arrays.equals(expected, tokenizer.encode(text)) || !text.equals(tokenizer.decode(expected))) {
              return false;
            }
          }
          return true;
        }));
      }
      for (Future<Boolean> result : results) {
        assertTrue(result.get());
      }
    } finally {
      pool.shutdown();
    }
  }

  @Test
  void close_thenCall_fails() throws Exception {
    HfTextTokenizer other = HfTextTokenizer.fromJson(BundleTokenizers.build(512, BundleTokenizers.DEFAULT_SPECIAL_TOKENS, 7));
    other.close();
    other.close();
    assertThrows(IllegalStateException.class, () -> other.encode("x"));
  }

  @Test
  void specialTokenIds_mapsEveryDefaultSpecial() {
    Map<String, Integer> expected = new LinkedHashMap<>();
    for (int id = 0; id < BundleTokenizers.DEFAULT_SPECIAL_TOKENS.size(); id++) {
      expected.put(BundleTokenizers.DEFAULT_SPECIAL_TOKENS.get(id), id);
    }
    assertEquals(expected, tokenizer.specialTokenIds());
    assertEquals(List.copyOf(expected.keySet()), List.copyOf(tokenizer.specialTokenIds().keySet()));
    assertThrows(UnsupportedOperationException.class, () -> tokenizer.specialTokenIds().put("<x>", 9));
  }

  @Test
  void fromJson_malformed_namesTheProblem() {
    Map<String, String> cases = Map.of(
        "not json", "tokenizer.json: not JSON",
        "[]", "tokenizer.json: no model.vocab object",
        "{\"model\": {\"vocab\": [\"a\"]}}", "tokenizer.json: no model.vocab object",
        "{\"model\": {\"vocab\": {\"a\": \"0\"}}}", "tokenizer.json: model.vocab[\"a\"] is not a token id",
        "{\"model\": {\"vocab\": {\"a\": -1}}}", "tokenizer.json: model.vocab[\"a\"] is not a token id",
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": {}}", "tokenizer.json: added_tokens is not an array",
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"content\": \"<s>\"}]}", "tokenizer.json: added_tokens[0].id is not a token id",
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 1}]}", "tokenizer.json: added_tokens[0] has no string content");
    cases.forEach((json, message) -> {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HfTextTokenizer.fromJson(json), json);
      assertTrue(e.getMessage().startsWith(message), json + " -> " + e.getMessage());
    });
  }
}
