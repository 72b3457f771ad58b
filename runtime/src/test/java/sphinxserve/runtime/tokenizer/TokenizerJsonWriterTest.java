package sphinxserve.runtime.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TokenizerJsonWriterTest {

  private static final BpeModel MODEL = BpeTrainer.train(Map.of(" hug", 10L, " pug", 5L, "\"quoted\\", 3L), 262);

  @Test
  void write_layout_specialsThenBytesThenMerges() {
    List<String> specials = List.of("<s>", "</s>");
    Map<?, ?> root = (Map<?, ?>) Json.parse(TokenizerJsonWriter.write(MODEL, specials));
    assertNull(root.get("normalizer"));
    assertNull(root.get("post_processor"));
    assertEquals("ByteLevel", ((Map<?, ?>) root.get("pre_tokenizer")).get("type"));
    assertEquals("ByteLevel", ((Map<?, ?>) root.get("decoder")).get("type"));
    Map<?, ?> model = (Map<?, ?>) root.get("model");
    assertEquals("BPE", model.get("type"));
    List<String> vocabInIdOrder = new ArrayList<>();
    int expectedId = 0;
    for (Map.Entry<?, ?> e : ((Map<?, ?>) model.get("vocab")).entrySet()) {
      assertEquals(expectedId++, ((Json.JsonNumber) e.getValue()).intValue());
      vocabInIdOrder.add((String) e.getKey());
    }
    List<String> expected = new ArrayList<>(specials);
    expected.addAll(MODEL.tokens());
    assertEquals(expected, vocabInIdOrder);
    assertEquals(MODEL.merges().size(), ((List<?>) model.get("merges")).size());
    List<?> added = (List<?>) root.get("added_tokens");
    assertEquals(2, added.size());
    assertEquals(Boolean.TRUE, ((Map<?, ?>) added.get(1)).get("special"));
    assertEquals("</s>", ((Map<?, ?>) added.get(1)).get("content"));
  }

  @Test
  void write_awkwardSpecials_escapedAndLoadable() throws Exception {
    List<String> specials = List.of("<\"q\">", "<back\\slash>", "<tab\t>", "<ünï>", "<😀>");
    String json = TokenizerJsonWriter.write(MODEL, specials);
    Map<?, ?> vocab = (Map<?, ?>) ((Map<?, ?>) ((Map<?, ?>) Json.parse(json)).get("model")).get("vocab");
    for (int id = 0; id < specials.size(); id++) {
      assertEquals(id, ((Json.JsonNumber) vocab.get(specials.get(id))).intValue());
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
  }
}
