package sphinxserve.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TokenizerJsonWriterTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  private static final BpeModel MODEL = BpeTrainer.train(Map.of(" hug", 10L, " pug", 5L, "\"quoted\\", 3L), 262);

  @Test
  void write_layout_specialsThenBytesThenMerges() throws Exception {
    List<String> specials = List.of("<s>", "</s>");
    JsonNode root = JSON.readTree(TokenizerJsonWriter.write(MODEL, specials));
    assertTrue(root.get("normalizer").isNull());
    assertTrue(root.get("post_processor").isNull());
    assertEquals("ByteLevel", root.get("pre_tokenizer").get("type").textValue());
    assertEquals("ByteLevel", root.get("decoder").get("type").textValue());
    JsonNode model = root.get("model");
    assertEquals("BPE", model.get("type").textValue());
    List<String> vocabInIdOrder = new ArrayList<>();
    int expectedId = 0;
    for (Map.Entry<String, JsonNode> e : model.get("vocab").properties()) {
      assertTrue(e.getValue().isInt());
      assertEquals(expectedId++, e.getValue().intValue());
      vocabInIdOrder.add(e.getKey());
    }
    List<String> expected = new ArrayList<>(specials);
    expected.addAll(MODEL.tokens());
    assertEquals(expected, vocabInIdOrder);
    assertEquals(MODEL.merges().size(), model.get("merges").size());
    JsonNode added = root.get("added_tokens");
    assertEquals(2, added.size());
    assertTrue(added.get(1).get("special").booleanValue());
    assertEquals("</s>", added.get(1).get("content").textValue());
  }

  @Test
  void write_awkwardSpecials_escapedAndLoadable() throws Exception {
    List<String> specials = List.of("<\"q\">", "<back\\slash>", "<tab\t>", "<ünï>", "<😀>");
    String json = TokenizerJsonWriter.write(MODEL, specials);
    JsonNode vocab = JSON.readTree(json).get("model").get("vocab");
    for (int id = 0; id < specials.size(); id++) {
      assertEquals(id, vocab.get(specials.get(id)).intValue());
    }
    try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(json)) {
      assertEquals(specials.size() + MODEL.tokens().size(), tokenizer.vocabSize());
      assertTrue(tokenizer.isSpecial(4));
      String text = " hug \"quoted\\ <\"q\">";
      assertEquals(text, tokenizer.decode(tokenizer.encode(text)));
    }
  }

  @Test
  void write_sameModel_sameText() {
    assertEquals(TokenizerJsonWriter.write(MODEL, List.of("<s>")), TokenizerJsonWriter.write(MODEL, List.of("<s>")));
  }

  @Test
  void write_badSpecials_rejected() {
    assertThrows(IllegalArgumentException.class, () -> TokenizerJsonWriter.write(MODEL, List.of("<s>", "<s>")));
    assertThrows(IllegalArgumentException.class, () -> TokenizerJsonWriter.write(MODEL, List.of("")));
    assertThrows(IllegalArgumentException.class, () -> TokenizerJsonWriter.write(MODEL, List.of("hug")));
    assertThrows(IllegalArgumentException.class, () -> TokenizerJsonWriter.write(MODEL, List.of("<\ud800>")));
  }
}
