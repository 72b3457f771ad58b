package sphinxserve.runtime.testing.checkpoints;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints.Linear;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints.Llama3;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Dtype;
import sphinxserve.runtime.testing.checkpoints.RawSafetensors.Tensor;

class ReferenceLlamaTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int[] PROMPT = {1, 57, 300, 12, 9, 250, 3, 77, 140, 5, 383, 64};

  @TempDir Path tmp;

  private int dirs;

  private Path dir() {
    return tmp.resolve("m" + dirs++);
  }

  private ReferenceLlama hf(RandomCheckpoints model) throws IOException {
    return ReferenceLlama.load(model.writeHf(dir()));
  }

  /** {@code max|a − b|} over all positions, divided by {@code max|b|}. */
  static double relativeDifference(double[][] a, double[][] b) {
    assertEquals(b.length, a.length);
    double diff = 0;
    double scale = 0;
    for (int t = 0; t < b.length; t++) {
      assertEquals(b[t].length, a[t].length);
      for (int i = 0; i < b[t].length; i++) {
        diff = Math.max(diff, Math.abs(a[t][i] - b[t][i]));
        scale = Math.max(scale, Math.abs(b[t][i]));
      }
    }
    return diff / scale;
  }

  // ---------------------------------------------------------------------------------------------- layouts

  @Test
  void hfAndMetaLayouts_giveTheSameLogits_forMhaAndGqa() throws IOException {
    for (int kvHeads : new int[] {4, 2, 1}) {
      for (long seed : new long[] {1, 2, 3}) {
        RandomCheckpoints model = RandomCheckpoints.builder().numKvHeads(kvHeads).seed(seed).build();
        ReferenceLlama hf = ReferenceLlama.load(model.writeHf(dir()));
        ReferenceLlama meta = ReferenceLlama.load(model.writeMeta(dir()));
        assertEquals(ReferenceLlama.Layout.HF, hf.layout());
        assertEquals(ReferenceLlama.Layout.META, meta.layout());
        assertEquals(hf.config().intermediateSize(), meta.config().intermediateSize());
        double diff = relativeDifference(meta.logits(PROMPT), hf.logits(PROMPT));
        assertTrue(diff < 1e-12, "kv heads " + kvHeads + ", seed " + seed + ": relative difference " + diff);
      }
    }
  }

  @Test
  void hfAndMetaLayouts_agreeInBf16_andAtLargePositions() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().dtype(Dtype.BF16).numLayers(3).seed(11).build();
    ReferenceLlama hf = ReferenceLlama.load(model.writeHf(dir()));
    ReferenceLlama meta = ReferenceLlama.load(model.writeMeta(dir()));
    int[] positions = new int[PROMPT.length];
    for (int i = 0; i < positions.length; i++) positions[i] = 1000 + 37 * i;
    assertTrue(relativeDifference(meta.logits(PROMPT, positions), hf.logits(PROMPT, positions)) < 1e-12);
  }

  /** The comparison above can fail: Meta weights left in HF row order give other logits. */
  @Test
  void metaLayoutWithoutThePermutation_givesOtherLogits() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().seed(4).build();
    ReferenceLlama hf = hf(model);
    Path metaDir = model.writeMeta(dir());
    Map<String, Tensor> tensors = new LinkedHashMap<>(RawSafetensors.read(metaDir.resolve("consolidated.safetensors")));
    for (int l = 0; l < model.numLayers(); l++) {
      tensors.put("layers." + l + ".attention.wq.weight", model.tensors().get("model.layers." + l + ".self_attn.q_proj.weight"));
      tensors.put("layers." + l + ".attention.wk.weight", model.tensors().get("model.layers." + l + ".self_attn.k_proj.weight"));
    }
    RawSafetensors.write(metaDir.resolve("consolidated.safetensors"), tensors);
    double diff = relativeDifference(ReferenceLlama.load(metaDir).logits(PROMPT), hf.logits(PROMPT));
    assertTrue(diff > 1e-3, "unpermuted Meta weights differ by only " + diff);
  }

  @Test
  void logits_areFarFromFlat_andDependOnPosition() throws IOException {
    ReferenceLlama reference = hf(RandomCheckpoints.builder().seed(5).build());
    double[] logits = reference.lastLogits(PROMPT);
    double max = Double.NEGATIVE_INFINITY;
    for (double v : logits) max = Math.max(max, v);
    double sum = 0;
    for (double v : logits) sum += Math.exp(v - max);
    double entropy = 0;
    for (double v : logits) {
      double p = Math.exp(v - max) / sum;
      if (p > 0) entropy -= p * Math.log(p);
    }
    assertTrue(entropy < 0.8 * Math.log(logits.length), "entropy " + entropy + " of " + Math.log(logits.length));
    assertTrue(1 / sum > 5.0 / logits.length, "top probability " + 1 / sum);

    int[] shifted = new int[PROMPT.length];
    for (int i = 0; i < shifted.length; i++) shifted[i] = i + 3;
    double diff = relativeDifference(reference.logits(PROMPT, shifted), reference.logits(PROMPT));
    // Relative positions are unchanged, so a shift leaves attention scores (and logits) as they were.
    assertTrue(diff < 1e-9, "RoPE is not relative: " + diff);
    int[] stretched = new int[PROMPT.length];
    for (int i = 0; i < stretched.length; i++) stretched[i] = 2 * i;
    assertTrue(relativeDifference(reference.logits(PROMPT, stretched), reference.logits(PROMPT)) > 1e-3);
  }

  @Test
  void logitsOfAPrefix_equalTheFirstRowsOfTheWhole() throws IOException {
    ReferenceLlama reference = hf(RandomCheckpoints.builder().seed(6).attentionBias(true).mlpBias(true).build());
    double[][] whole = reference.logits(PROMPT);
    for (int t = 0; t < PROMPT.length; t++) {
      assertArrayEquals(whole[t], reference.lastLogits(java.util.Arrays.copyOf(PROMPT, t + 1)), 1e-12);
    }
  }

  // ---------------------------------------------------------------------------------------------- RoPE scaling

  @Test
  void llama3WithFactorOne_equalsNoScaling() throws IOException {
    RandomCheckpoints plain = RandomCheckpoints.builder().seed(7).build();
    ReferenceLlama scaled = hf(plain.toBuilder().ropeScaling(new Llama3(1, 1, 4, 16)).build());
    assertArrayEquals(hf(plain).inverseFrequencies(), scaled.inverseFrequencies(), 1e-15);
    assertTrue(relativeDifference(scaled.logits(PROMPT), hf(plain).logits(PROMPT)) < 1e-12);
  }

  @Test
  void llama3_withEveryWavelengthLong_equalsLinear_andWithEveryWavelengthShort_equalsNone() throws IOException {
    RandomCheckpoints plain = RandomCheckpoints.builder().seed(8).build();
    // Wavelengths are at least 2π: an original context of 1 makes them all "low frequency" (divided by factor).
    ReferenceLlama allLow = hf(plain.toBuilder().ropeScaling(new Llama3(4, 1, 4, 1)).build());
    ReferenceLlama linear = hf(plain.toBuilder().ropeScaling(new Linear(4)).build());
    assertArrayEquals(linear.inverseFrequencies(), allLow.inverseFrequencies(), 1e-15);
    assertTrue(relativeDifference(allLow.logits(PROMPT), linear.logits(PROMPT)) < 1e-12);
    // A huge original context makes them all "high frequency" (kept).
    ReferenceLlama allHigh = hf(plain.toBuilder().ropeScaling(new Llama3(4, 1, 4, 1 << 30)).build());
    assertArrayEquals(hf(plain).inverseFrequencies(), allHigh.inverseFrequencies(), 1e-15);
  }

  @Test
  void linearScaling_atPositionFTimesP_equalsNoScalingAtP() throws IOException {
    RandomCheckpoints plain = RandomCheckpoints.builder().seed(9).build();
    for (int factor : new int[] {2, 3}) {
      ReferenceLlama scaled = hf(plain.toBuilder().ropeScaling(new Linear(factor)).build());
      int[] positions = new int[PROMPT.length];
      for (int i = 0; i < positions.length; i++) positions[i] = factor * i;
      assertTrue(relativeDifference(scaled.logits(PROMPT, positions), hf(plain).logits(PROMPT)) < 1e-12);
      assertTrue(relativeDifference(scaled.logits(PROMPT), hf(plain).logits(PROMPT)) > 1e-3, "scaling changed nothing");
    }
  }

  /**
   * The llama3 frequencies against Meta's own formulation ({@code apply_scaling} in llama-models: high frequencies
   * kept, low divided, the band between interpolated), with every band populated.
   */
  @Test
  void llama3Frequencies_matchMetasApplyScaling_inAllThreeBands() throws IOException {
    double factor = 8;
    double low = 1;
    double high = 4;
    int oldContext = 64;
    RandomCheckpoints plain = RandomCheckpoints.builder().hiddenSize(128).numHeads(2).numKvHeads(1).ropeTheta(10_000).seed(10).build();
    double[] base = hf(plain).inverseFrequencies();
    double[] actual = hf(plain.toBuilder().ropeScaling(new Llama3(factor, low, high, oldContext)).build()).inverseFrequencies();
    int[] bands = new int[3];
    for (int i = 0; i < base.length; i++) {
      double wavelen = 2 * Math.PI / base[i];
      double expected;
      if (wavelen < oldContext / high) {
        expected = base[i];
        bands[0]++;
      } else if (wavelen > oldContext / low) {
        expected = base[i] / factor;
        bands[2]++;
      } else {
        double smooth = (oldContext / wavelen - low) / (high - low);
        expected = (1 - smooth) * base[i] / factor + smooth * base[i];
        bands[1]++;
      }
      assertEquals(expected, actual[i], 1e-15 * base[i], "frequency " + i);
    }
    for (int band : bands) assertTrue(band > 0, "bands " + java.util.Arrays.toString(bands));
  }

  // ---------------------------------------------------------------------------------------------- weights

  @Test
  void oneShardAndSeveralShards_giveIdenticalLogits() throws IOException {
    RandomCheckpoints one = RandomCheckpoints.builder().seed(12).dtype(Dtype.F16).build();
    double[][] expected = hf(one).logits(PROMPT);
    for (int shards : new int[] {2, 3}) {
      ReferenceLlama sharded = hf(one.toBuilder().shards(shards).build());
      double[][] actual = sharded.logits(PROMPT);
      for (int t = 0; t < PROMPT.length; t++) assertArrayEquals(expected[t], actual[t], 0.0);
    }
  }

  @Test
  void halfPrecisionModels_stayCloseToFloat32() throws IOException {
    RandomCheckpoints f32 = RandomCheckpoints.builder().seed(13).build();
    double[][] expected = hf(f32).logits(PROMPT);
    for (Dtype dtype : new Dtype[] {Dtype.F16, Dtype.BF16}) {
      double diff = relativeDifference(hf(f32.toBuilder().dtype(dtype).build()).logits(PROMPT), expected);
      assertTrue(diff > 0 && diff < 0.05, dtype + ": " + diff);
    }
  }

  @Test
  void tiedEmbeddings_useTheEmbeddingTableAsTheHead() throws IOException {
    RandomCheckpoints tied = RandomCheckpoints.builder().tieWordEmbeddings(true).seed(14).build();
    assertFalse(tied.tensors().containsKey("lm_head.weight"));
    ReferenceLlama reference = hf(tied);
    // The same model untied, its lm_head an explicit copy of the embeddings.
    Path untied = tied.writeHf(dir());
    ObjectNode config = (ObjectNode) JSON.readTree(untied.resolve("config.json").toFile());
    config.put("tie_word_embeddings", false);
    Files.writeString(untied.resolve("config.json"), config.toString());
    Map<String, Tensor> tensors = new LinkedHashMap<>(RawSafetensors.read(untied.resolve("model.safetensors")));
    tensors.put("lm_head.weight", tensors.get("model.embed_tokens.weight"));
    RawSafetensors.write(untied.resolve("model.safetensors"), tensors);
    assertEquals(0.0, relativeDifference(ReferenceLlama.load(untied).logits(PROMPT), reference.logits(PROMPT)));
    // Meta always stores output.weight: a copy of the embeddings when tied.
    assertTrue(relativeDifference(ReferenceLlama.load(tied.writeMeta(dir())).logits(PROMPT), reference.logits(PROMPT)) < 1e-12);
    // And the untied model of the same seed has its own head.
    assertTrue(relativeDifference(hf(tied.toBuilder().tieWordEmbeddings(false).build()).logits(PROMPT), reference.logits(PROMPT)) > 1e-3);
  }

  @Test
  void biases_areApplied_andZeroBiasesEqualNoBiases() throws IOException {
    RandomCheckpoints plain = RandomCheckpoints.builder().seed(15).build();
    RandomCheckpoints biased = plain.toBuilder().attentionBias(true).mlpBias(true).build();
    Path dir = biased.writeHf(dir());
    double[][] withBiases = ReferenceLlama.load(dir).logits(PROMPT);
    assertTrue(relativeDifference(withBiases, hf(plain).logits(PROMPT)) > 1e-3);
    Map<String, Tensor> tensors = new LinkedHashMap<>(RawSafetensors.read(dir.resolve("model.safetensors")));
    int biases = 0;
    for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
      if (e.getKey().endsWith(".bias")) {
        biases++;
        Tensor t = e.getValue();
        e.setValue(new Tensor(t.dtype(), t.shape(), new float[t.values().length]));
      }
    }
    assertEquals(7 * plain.numLayers(), biases);
    RawSafetensors.write(dir.resolve("model.safetensors"), tensors);
    assertEquals(0.0, relativeDifference(ReferenceLlama.load(dir).logits(PROMPT), hf(plain).logits(PROMPT)));
  }

  @Test
  void explicitHeadDim_differentFromHiddenOverHeads() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().hiddenSize(64).numHeads(4).numKvHeads(2).headDim(32).seed(16).build();
    assertEquals(List.of(128L, 64L), java.util.Arrays.stream(model.tensors().get("model.layers.0.self_attn.q_proj.weight").shape()).boxed().toList());
    assertEquals(List.of(64L, 128L), java.util.Arrays.stream(model.tensors().get("model.layers.0.self_attn.o_proj.weight").shape()).boxed().toList());
    ReferenceLlama reference = hf(model);
    assertEquals(32, reference.config().headDim());
    assertEquals(16, reference.inverseFrequencies().length);
    for (double v : reference.lastLogits(PROMPT)) assertTrue(Double.isFinite(v));
    assertThrows(IllegalStateException.class, () -> model.writeMeta(dir()));
  }

  // ---------------------------------------------------------------------------------------------- decoding

  @Test
  void greedy_appendsTheArgmaxEachStep_andStopsAtEosWhenAsked() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().seed(17).build();
    ReferenceLlama reference = hf(model);
    int[] prompt = {1, 40, 41, 42};
    int[] generated = reference.greedy(prompt, 5);
    assertEquals(5, generated.length);
    int[] sequence = prompt;
    for (int token : generated) {
      assertEquals(ReferenceLlama.argmax(reference.lastLogits(sequence)), token);
      sequence = java.util.Arrays.copyOf(sequence, sequence.length + 1);
      sequence[sequence.length - 1] = token;
    }
    // Make the first generated token an EOS id: decoding stops right after it.
    ReferenceLlama withEos = hf(model.toBuilder().eosTokenIds(List.of(2, generated[0])).build());
    assertEquals(List.of(2, generated[0]), withEos.eosTokenIds());
    assertArrayEquals(new int[] {generated[0]}, withEos.greedy(prompt, 5, true));
    assertArrayEquals(generated, withEos.greedy(prompt, 5, false));
  }

  // ---------------------------------------------------------------------------------------------- errors

  @Test
  void damagedCheckpoints_failToLoad_namingTheFile() throws IOException {
    RandomCheckpoints model = RandomCheckpoints.builder().shards(2).seed(18).build();
    String tensor = "model.layers.1.mlp.up_proj.weight";

    Path truncated = model.writeHf(dir());
    Path file = CheckpointCorruptions.truncate(CheckpointCorruptions.fileOf(truncated, tensor), 10);
    assertMessageNames(truncated, file.getFileName().toString());

    Path deleted = model.writeHf(dir());
    file = CheckpointCorruptions.delete(CheckpointCorruptions.fileOf(deleted, tensor));
    assertMessageNames(deleted, file.getFileName().toString());

    Path reshaped = model.writeHf(dir());
    CheckpointCorruptions.setShape(reshaped, tensor, 160, 32);
    assertMessageNames(reshaped, tensor);

    Path transposed = model.writeHf(dir());
    CheckpointCorruptions.setShape(transposed, tensor, 64, 160);
    assertMessageNames(transposed, tensor);

    Path badDtype = model.writeHf(dir());
    CheckpointCorruptions.setDtype(badDtype, tensor, "F8_E9M0");
    assertMessageNames(badDtype, "F8_E9M0");

    Path missing = model.writeHf(dir());
    CheckpointCorruptions.removeTensor(missing, tensor);
    assertMessageNames(missing, tensor);

    Path meta = model.toBuilder().shards(1).build().writeMeta(dir());
    CheckpointCorruptions.setDtype(meta, "layers.0.attention.wq.weight", "I64");
    assertMessageNames(meta, "consolidated.safetensors");
  }

  @Test
  void unusedTensors_areAnError() throws IOException {
    Path dir = RandomCheckpoints.builder().seed(19).build().writeHf(dir());
    Map<String, Tensor> tensors = new LinkedHashMap<>(RawSafetensors.read(dir.resolve("model.safetensors")));
    tensors.put("model.layers.0.self_attn.q_proj.bias", new Tensor(Dtype.F32, new long[] {128}, new float[128]));
    RawSafetensors.write(dir.resolve("model.safetensors"), tensors);
    assertMessageNames(dir, "q_proj.bias");
  }

  private static void assertMessageNames(Path dir, String expected) {
    IOException e = assertThrows(IOException.class, () -> ReferenceLlama.load(dir));
    assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' does not name " + expected);
  }
}
