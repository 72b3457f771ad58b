package sphinxserve.runtime.testing.checkpoints;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints.Linear;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints.Llama3;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Dtype;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Tensor;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

class RandomCheckpointsTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path tmp;

  @Test
  void writeHf_writesTransformersConfigFiles() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().vocabSize(320).hiddenSize(48).numHeads(6).numKvHeads(2)
        .intermediateSize(96).numLayers(3).maxPositionEmbeddings(512).ropeTheta(500_000).rmsNormEps(1e-6)
        .ropeScaling(new Llama3(8, 1, 4, 128)).dtype(Dtype.BF16).llama3Chat().seed(2).build();
    Path dir = model.writeHf(tmp.resolve("hf"));
    JsonNode c = JSON.readTree(dir.resolve("config.json").toFile());
    assertEquals("LlamaForCausalLM", c.get("architectures").get(0).asText());
    assertEquals("llama", c.get("model_type").asText());
    assertEquals(48, c.get("hidden_size").asInt());
    assertEquals(96, c.get("intermediate_size").asInt());
    assertEquals(6, c.get("num_attention_heads").asInt());
    assertEquals(2, c.get("num_key_value_heads").asInt());
    assertEquals(3, c.get("num_hidden_layers").asInt());
    assertEquals(8, c.get("head_dim").asInt());
    assertEquals(1e-6, c.get("rms_norm_eps").asDouble());
    assertEquals(500_000, c.get("rope_theta").asDouble());
    assertEquals(512, c.get("max_position_embeddings").asInt());
    assertEquals(320, c.get("vocab_size").asInt());
    assertEquals("bfloat16", c.get("torch_dtype").asText());
    assertEquals("silu", c.get("hidden_act").asText());
    assertFalse(c.get("tie_word_embeddings").asBoolean());
    assertFalse(c.get("attention_bias").asBoolean());
    assertFalse(c.get("mlp_bias").asBoolean());
    assertEquals(1, c.get("bos_token_id").asInt());
    assertEquals("[2,5]", c.get("eos_token_id").toString());
    JsonNode rope = c.get("rope_scaling");
    assertEquals("llama3", rope.get("rope_type").asText());
    assertEquals(8.0, rope.get("factor").asDouble());
    assertEquals(1.0, rope.get("low_freq_factor").asDouble());
    assertEquals(4.0, rope.get("high_freq_factor").asDouble());
    assertEquals(128, rope.get("original_max_position_embeddings").asInt());

    JsonNode generation = JSON.readTree(dir.resolve("generation_config.json").toFile());
    assertEquals(1, generation.get("bos_token_id").asInt());
    assertEquals("[2,5]", generation.get("eos_token_id").toString());

    JsonNode tokenizerConfig = JSON.readTree(dir.resolve("tokenizer_config.json").toFile());
    assertEquals("<s>", tokenizerConfig.get("bos_token").asText());
    assertEquals("</s>", tokenizerConfig.get("eos_token").asText());
    assertTrue(tokenizerConfig.get("add_bos_token").asBoolean());
    assertEquals(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE, tokenizerConfig.get("chat_template").asText());
    assertEquals(512, tokenizerConfig.get("model_max_length").asInt());

    try (HfTextTokenizer tokenizer = HfTextTokenizer.fromJson(Files.readString(dir.resolve("tokenizer.json")))) {
      assertEquals(320, tokenizer.vocabSize());
    }
    JsonNode added = JSON.readTree(dir.resolve("tokenizer.json").toFile()).get("added_tokens");
    assertEquals("<|eot_id|>", added.get(5).get("content").asText());
    assertEquals(5, added.get(5).get("id").asInt());

    ReferenceLlama reference = ReferenceLlama.load(dir);
    assertEquals(List.of(2, 5), reference.eosTokenIds());
    assertEquals(1, reference.bosTokenId());
  }

  @Test
  void llama3ChatTemplate_rendersWithJinjava() {
    String rendered = new com.hubspot.jinjava.Jinjava().render(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE, Map.of(
        "messages", List.of(Map.of("role", "system", "content", "Be brief."), Map.of("role", "user", "content", " Hi! ")),
        "bos_token", "<s>", "add_generation_prompt", true));
    assertEquals("<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        + "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", rendered);
  }

  @Test
  void writeHf_defaultsAndLinearScaling() throws IOException {
    Path dir = RandomCheckpoints.builder().tieWordEmbeddings(true).attentionBias(true).mlpBias(true)
        .ropeScaling(new Linear(2)).build().writeHf(tmp.resolve("hf"));
    JsonNode c = JSON.readTree(dir.resolve("config.json").toFile());
    assertEquals("{\"factor\":2.0,\"rope_type\":\"linear\"}", c.get("rope_scaling").toString());
    assertEquals(2, c.get("eos_token_id").asInt());
    assertTrue(c.get("eos_token_id").isInt());
    assertTrue(c.get("tie_word_embeddings").asBoolean());
    assertTrue(c.get("attention_bias").asBoolean());
    assertTrue(c.get("mlp_bias").asBoolean());
    assertEquals("float32", c.get("torch_dtype").asText());
    assertTrue(JSON.readTree(dir.resolve("tokenizer_config.json").toFile()).get("chat_template").isNull());
    Map<String, Tensor> tensors = RawSafetensors.read(dir.resolve("model.safetensors"));
    assertFalse(tensors.containsKey("lm_head.weight"));
    assertTrue(tensors.containsKey("model.layers.1.self_attn.o_proj.bias"));
    assertTrue(tensors.containsKey("model.layers.1.mlp.down_proj.bias"));
    Path noScaling = RandomCheckpoints.builder().build().writeHf(tmp.resolve("plain"));
    assertTrue(JSON.readTree(noScaling.resolve("config.json").toFile()).get("rope_scaling").isNull());
  }

  @Test
  void writeHf_shards_followTheHuggingFaceNamingAndIndex() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().shards(3).dtype(Dtype.F16).build();
    Path dir = model.writeHf(tmp.resolve("hf"));
    assertEquals(List.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"),
        model.shardFileNames());
    assertFalse(Files.exists(dir.resolve("model.safetensors")));
    JsonNode index = JSON.readTree(dir.resolve("model.safetensors.index.json").toFile());
    long total = 0;
    for (Tensor t : model.tensors().values()) total += t.byteSize();
    assertEquals(total, index.get("metadata").get("total_size").asLong());
    JsonNode weightMap = index.get("weight_map");
    assertEquals(model.tensors().size(), weightMap.size());
    int seen = 0;
    for (String file : model.shardFileNames()) {
      Map<String, Tensor> shard = RawSafetensors.read(dir.resolve(file));
      assertFalse(shard.isEmpty(), file);
      for (Map.Entry<String, Tensor> e : shard.entrySet()) {
        assertEquals(file, weightMap.get(e.getKey()).asText());
        assertArrayEquals(model.tensors().get(e.getKey()).values(), e.getValue().values());
        seen++;
      }
      assertEquals("pt", RawSafetensors.readHeader(dir.resolve(file)).get("__metadata__").get("format").asText());
    }
    assertEquals(model.tensors().size(), seen);
    // As many shards as tensors still gives every shard one.
    int count = model.tensors().size();
    model.toBuilder().shards(count).build().writeHf(tmp.resolve("many"));
    try (Stream<Path> files = Files.list(tmp.resolve("many"))) {
      assertEquals(count, files.filter(f -> f.getFileName().toString().endsWith(".safetensors")).count());
    }
  }

  @Test
  void safetensorsHeaders_arePaddedAndOffsetsContiguous() throws IOException {
    Path dir = RandomCheckpoints.builder().dtype(Dtype.BF16).build().writeHf(tmp.resolve("hf"));
    byte[] bytes = Files.readAllBytes(dir.resolve("model.safetensors"));
    long headerLength = java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
    assertEquals(0, headerLength % 8);
    long expectedBegin = 0;
    JsonNode header = RawSafetensors.readHeader(dir.resolve("model.safetensors"));
    for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getKey().equals("__metadata__")) continue;
      assertEquals("BF16", e.getValue().get("dtype").asText());
      assertEquals(expectedBegin, e.getValue().get("data_offsets").get(0).asLong());
      expectedBegin = e.getValue().get("data_offsets").get(1).asLong();
    }
    assertEquals(bytes.length - 8 - headerLength, expectedBegin);
  }

  @Test
  void sameOptions_writeIdenticalFiles_andSeedsDiffer() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().shards(2).dtype(Dtype.BF16).build();
    Path a = model.writeHf(tmp.resolve("a"));
    Path b = RandomCheckpoints.builder().shards(2).dtype(Dtype.BF16).build().writeHf(tmp.resolve("b"));
    for (String file : List.of("config.json", "tokenizer.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")) {
      assertArrayEquals(Files.readAllBytes(a.resolve(file)), Files.readAllBytes(b.resolve(file)), file);
    }
    float[] other = model.toBuilder().seed(2).build().tensors().get("model.norm.weight").values();
    assertFalse(java.util.Arrays.equals(model.tensors().get("model.norm.weight").values(), other));
  }

  @Test
  void bf16Values_areTheNearestBf16_tiesToEven() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().dtype(Dtype.BF16).build();
    Path dir = model.writeHf(tmp.resolve("hf"));
    Map<String, Tensor> stored = RawSafetensors.read(dir.resolve("model.safetensors"));
    Map<String, Tensor> original = model.unroundedTensors();
    int checked = 0;
    int inexact = 0;
    for (Map.Entry<String, Tensor> e : original.entrySet()) {
      float[] values = e.getValue().values();
      float[] read = stored.get(e.getKey()).values();
      for (int i = 0; i < values.length; i++) {
        assertNearestBf16(values[i], read[i]);
        if (values[i] != read[i]) inexact++;
        checked++;
      }
    }
    assertTrue(inexact > checked / 2, "most float32 draws are not bf16 values: " + inexact + " of " + checked);
    // Hand-made ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 (odd): to 1. 1 + 3·2^-8: to 1 + 2^-6 (even).
    assertEquals(1f, Dtype.BF16.round(1f + 0x1p-8f));
    assertEquals(1f + 0x1p-6f, Dtype.BF16.round(1f + 3 * 0x1p-8f));
    assertEquals(-(1f + 0x1p-6f), Dtype.BF16.round(-(1f + 3 * 0x1p-8f)));
    assertEquals(1f + 0x1p-7f, Dtype.BF16.round(1f + 0x1p-8f + 0x1p-20f));
  }

  private static void assertNearestBf16(float original, float stored) {
    int bits = Float.floatToRawIntBits(stored);
    assertEquals(0, bits & 0xFFFF, "not a bf16 value: " + stored);
    float awayFromZero = Float.intBitsToFloat(bits + 0x10000);
    float towardZero = Float.intBitsToFloat(bits - 0x10000);
    double error = Math.abs((double) original - stored);
    assertTrue(error <= Math.abs((double) original - awayFromZero), original + " -> " + stored);
    if (stored != 0) assertTrue(error <= Math.abs((double) original - towardZero), original + " -> " + stored);
    if (error == Math.abs((double) original - awayFromZero) || error == Math.abs((double) original - towardZero)) {
      assertEquals(0, (bits >>> 16) & 1, "tie not to even: " + original + " -> " + stored);
    }
  }

  @Test
  void values_haveTheDocumentedScales() {
    RandomCheckpoints model = RandomCheckpoints.builder().build();
    assertEquals(1.0, std(model.tensors().get("model.embed_tokens.weight").values()), 0.05);
    assertEquals(1 / Math.sqrt(64), std(model.tensors().get("model.layers.0.self_attn.q_proj.weight").values()), 0.01);
    assertEquals(1 / Math.sqrt(160), std(model.tensors().get("model.layers.0.mlp.down_proj.weight").values()), 0.01);
    assertEquals(4 / Math.sqrt(64), std(model.tensors().get("lm_head.weight").values()), 0.03);
    for (float g : model.tensors().get("model.norm.weight").values()) assertTrue(g >= 0.9f && g <= 1.1f);
  }

  private static double std(float[] values) {
    double sum = 0;
    double squares = 0;
    for (float v : values) {
      sum += v;
      squares += (double) v * v;
    }
    double mean = sum / values.length;
    return Math.sqrt(squares / values.length - mean * mean);
  }

  @Test
  void writeMeta_paramsReproduceTheIntermediateSize_withMetasFormula() throws IOException {
    int[][] cases = {{64, 176}, {64, 256}, {64, 160}, {64, 128}, {64, 512}, {96, 256}, {48, 100}};
    List<String> multipliers = new ArrayList<>();
    for (int[] c : cases) {
      RandomCheckpoints model = RandomCheckpoints.builder().hiddenSize(c[0]).intermediateSize(c[1]).build();
      Path dir = model.writeMeta(tmp.resolve("meta-" + c[0] + "-" + c[1]));
      JsonNode params = JSON.readTree(dir.resolve("params.json").toFile());
      int hidden = (int) (2 * (4.0 * c[0]) / 3);
      if (!params.get("ffn_dim_multiplier").isNull()) {
        hidden = (int) (params.get("ffn_dim_multiplier").asDouble() * hidden);
        multipliers.add(c[0] + "/" + c[1]);
      }
      int multipleOf = params.get("multiple_of").asInt();
      assertEquals(c[1], multipleOf * ((hidden + multipleOf - 1) / multipleOf), "case " + c[0] + "/" + c[1]);
      assertFalse(params.has("intermediate_size"));
      assertEquals(c[1], ReferenceLlama.load(dir).config().intermediateSize());
    }
    assertEquals(List.of("64/160", "64/128", "48/100"), multipliers);
    JsonNode params = JSON.readTree(tmp.resolve("meta-64-176/params.json").toFile());
    assertEquals(16, params.get("multiple_of").asInt());
    for (String field : List.of("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "norm_eps", "rope_theta", "max_seq_len")) {
      assertTrue(params.has(field), field);
    }
  }

  @Test
  void writeMeta_usesMetaNames_andInterleavesQueryAndKeyRows() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().numHeads(4).numKvHeads(2).build();
    Path dir = model.writeMeta(tmp.resolve("meta"));
    Map<String, Tensor> meta = RawSafetensors.read(dir.resolve("consolidated.safetensors"));
    assertEquals(model.tensors().size(), meta.size());
    assertTrue(Files.exists(dir.resolve("tokenizer.json")));
    int d = model.headDim();
    int h = model.hiddenSize();
    float[] hfQ = model.tensors().get("model.layers.1.self_attn.q_proj.weight").values();
    float[] metaQ = meta.get("layers.1.attention.wq.weight").values();
    float[] hfK = model.tensors().get("model.layers.1.self_attn.k_proj.weight").values();
    float[] metaK = meta.get("layers.1.attention.wk.weight").values();
    for (int head = 0; head < 4; head++) {
      for (int i = 0; i < d / 2; i++) {
        for (int j = 0; j < 2; j++) {
          int hfRow = head * d + j * (d / 2) + i;
          int metaRow = head * d + 2 * i + j;
          assertEquals(hfQ[hfRow * h + 5], metaQ[metaRow * h + 5]);
          if (head < 2) assertEquals(hfK[hfRow * h + 7], metaK[metaRow * h + 7]);
        }
      }
    }
    assertArrayEquals(model.tensors().get("model.layers.0.mlp.gate_proj.weight").values(), meta.get("layers.0.feed_forward.w1.weight").values());
    assertArrayEquals(model.tensors().get("model.layers.0.mlp.down_proj.weight").values(), meta.get("layers.0.feed_forward.w2.weight").values());
    assertArrayEquals(model.tensors().get("model.layers.0.mlp.up_proj.weight").values(), meta.get("layers.0.feed_forward.w3.weight").values());
    assertArrayEquals(model.tensors().get("lm_head.weight").values(), meta.get("output.weight").values());
  }

  @Test
  void writeMeta_refusesWhatMetaCannotExpress() {
    RandomCheckpoints base = RandomCheckpoints.builder().build();
    for (RandomCheckpoints model : List.of(base.toBuilder().attentionBias(true).build(), base.toBuilder().mlpBias(true).build(),
        base.toBuilder().ropeScaling(new Linear(2)).build(), base.toBuilder().headDim(32).build())) {
      assertThrows(IllegalStateException.class, () -> model.writeMeta(tmp.resolve("meta")));
    }
  }

  @Test
  void builder_rejectsInconsistentOptions() {
    assertThrows(IllegalArgumentException.class, () -> RandomCheckpoints.builder().numHeads(4).numKvHeads(3).build());
    assertThrows(IllegalArgumentException.class, () -> RandomCheckpoints.builder().hiddenSize(60).numHeads(8).build());
    assertThrows(IllegalArgumentException.class, () -> RandomCheckpoints.builder().eosTokenId(384).build());
    assertThrows(IllegalArgumentException.class, () -> RandomCheckpoints.builder().specialTokens(List.of("<unk>", "<s>")).build());
    RandomCheckpoints model = RandomCheckpoints.builder().eosTokenIds(List.of(2)).seed(5).build();
    assertEquals(model.hfConfig(), model.toBuilder().build().hfConfig());
  }
}
