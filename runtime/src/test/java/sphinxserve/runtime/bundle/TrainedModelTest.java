package sphinxserve.runtime.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.SphinxTinyParity;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

/**
 * The trained SPHINX-tiny as the node serves it: the bundle the Java builder makes from the exported weights
 * computes what PyTorch computed in training (parity fixture written by tools/sphinx_tiny/export.py), the
 * node's tokenizer splits text as training did, and a bad weights directory is refused with its file and
 * tensor named.
 */
class TrainedModelTest {

  private static final double PARITY_TOLERANCE = 1e-4;
  private static final int BLOCK_SIZE = 16;

  @TempDir static Path shared;
  private static Bundle bundle;
  private static TrainedModel model;

  @BeforeAll
  static void build() throws IOException {
    model = TrainedModel.embedded("sphinx-tiny");
    BundleBuilder.build(model, shared.resolve("bundle"));
    bundle = Bundle.open(shared.resolve("bundle"));
  }

  @Test
  void embeddedModelBuildsABundleOfItsShapes() {
    assertTrue(bundle.manifest().getSource().startsWith("trained:sphinx-tiny:weights-sha256=" + model.weightsSha256()),
        bundle.manifest().getSource());
    assertEquals(model.decoder().vocabSize(), bundle.spec().vocabSize());
    assertEquals(model.vision().tokensPerView() * 5, bundle.spec().vision().tokensPerImage());
    assertEquals(model.imageSize(), bundle.spec().vision().imageSize());
  }

  @Test
  void sameModelBuildsByteIdenticalBundles(@TempDir Path again) throws IOException {
    BundleBuilder.build(model, again);
    for (String file : List.of(BundleFiles.MANIFEST, BundleFiles.DECODER, BundleFiles.VISION, BundleFiles.TOKENIZER)) {
      assertArrayEquals(Files.readAllBytes(bundle.directory().resolve(file)), Files.readAllBytes(again.resolve(file)), file);
    }
  }

  @Test
  void nodeTokenizerSplitsTextAsTrainingDid() throws IOException {
    Struct fixture = json(resource("/sphinx-tiny/tokenizer-samples.json"));
    List<Value> samples = fixture.getFieldsOrThrow("samples").getListValue().getValuesList();
    assertTrue(samples.size() > 10);
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(bundle.tokenizerFile())) {
      for (Value sample : samples) {
        String text = sample.getStructValue().getFieldsOrThrow("text").getStringValue();
        int[] expected = sample.getStructValue().getFieldsOrThrow("ids").getListValue().getValuesList().stream()
            .mapToInt(v -> (int) v.getNumberValue()).toArray();
        assertArrayEquals(expected, tokenizer.encode(text), text);
      }
    }
  }

  /** Vision output, the prompt's last logits and eight greedy steps agree with PyTorch to 1e-4. */
  @Test
  void engineComputesWhatPyTorchComputed() throws IOException {
    SphinxTinyParity parity = SphinxTinyParity.load();
    float[] embeds;
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 2));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      embeds = runtime.encodeViews(parity.pixelValues(), bundle.spec().vision().numViews());
    }
    SphinxTinyParity.assertClose(parity.imageEmbeds(), embeds, "image_embeds");
    parity.assertDecoderMatches(bundle, embeds);
  }

  @Test
  void missingWeightIsNamed(@TempDir Path dir) throws IOException {
    Map<String, SafeTensors.Tensor> tensors = tensors();
    tensors.remove("layers.1.up_proj");
    writeModel(dir, tensors);
    var e = assertThrows(BundleException.class, () -> BundleBuilder.build(TrainedModel.fromDirectory(dir), dir.resolve("out")));
    assertTrue(e.getMessage().contains("layers.1.up_proj"), e.getMessage());
    assertTrue(!Files.exists(dir.resolve("out").resolve(BundleFiles.MANIFEST)), "a failed build leaves no manifest");
  }

  @Test
  void unusedWeightIsRefused(@TempDir Path dir) throws IOException {
    Map<String, SafeTensors.Tensor> tensors = tensors();
    SafeTensors.Tensor norm = tensors.get("final_norm");
    tensors.put("final_nrom", new SafeTensors.Tensor("final_nrom", "F32", norm.shape(), norm.data()));
    writeModel(dir, tensors);
    var e = assertThrows(BundleException.class, () -> BundleBuilder.build(TrainedModel.fromDirectory(dir), dir.resolve("out")));
    assertTrue(e.getMessage().contains("final_nrom"), e.getMessage());
  }

  @Test
  void wrongSizedWeightIsNamed(@TempDir Path dir) throws IOException {
    Map<String, SafeTensors.Tensor> tensors = tensors();
    tensors.put("final_norm", new SafeTensors.Tensor("final_norm", "F32", new long[] {3}, java.lang.foreign.MemorySegment.ofArray(new byte[12])));
    writeModel(dir, tensors);
    var e = assertThrows(BundleException.class, () -> BundleBuilder.build(TrainedModel.fromDirectory(dir), dir.resolve("out")));
    assertTrue(e.getMessage().contains("final_norm"), e.getMessage());
  }

  @Test
  void truncatedWeightsFileIsNamed(@TempDir Path dir) throws IOException {
    writeModel(dir, tensors());
    Path weights = dir.resolve(TrainedModel.WEIGHTS_FILE);
    byte[] bytes = Files.readAllBytes(weights);
    Files.write(weights, Arrays.copyOf(bytes, bytes.length - 100));
    var e = assertThrows(BundleException.class, () -> TrainedModel.fromDirectory(dir));
    assertTrue(e.getMessage().contains(TrainedModel.WEIGHTS_FILE), e.getMessage());
  }

  @Test
  void unknownConfigFieldIsRefused(@TempDir Path dir) throws IOException {
    writeModel(dir, tensors());
    Path config = dir.resolve(TrainedModel.CONFIG_FILE);
    Files.writeString(config, Files.readString(config).replaceFirst("\"name\"", "\"nmae\": \"x\", \"name\""));
    var e = assertThrows(BundleException.class, () -> TrainedModel.fromDirectory(dir));
    assertTrue(e.getMessage().contains(TrainedModel.CONFIG_FILE) && e.getMessage().contains("nmae"), e.getMessage());
  }

  @Test
  void unknownEmbeddedModelListsTheKnownOnes() {
    var e = assertThrows(IllegalArgumentException.class, () -> TrainedModel.embedded("sphinx-huge"));
    assertTrue(e.getMessage().contains("sphinx-tiny"), e.getMessage());
  }

  // ---- helpers -----------------------------------------------------------------------------------------

  private static Map<String, SafeTensors.Tensor> tensors() {
    Map<String, SafeTensors.Tensor> out = new LinkedHashMap<>();
    for (String name : model.tensors().names()) out.put(name, model.tensors().get(name));
    return out;
  }

  /** A model directory with the embedded config and tokenizer and {@code tensors} as its weights. */
  private static void writeModel(Path dir, Map<String, SafeTensors.Tensor> tensors) throws IOException {
    Files.writeString(dir.resolve(TrainedModel.CONFIG_FILE), JsonFormat.printer().preservingProtoFieldNames().print(model.config()));
    Files.writeString(dir.resolve(TrainedModel.TOKENIZER_FILE), model.tokenizerJson());
    StringBuilder header = new StringBuilder("{");
    List<byte[]> blobs = new ArrayList<>();
    long offset = 0;
    for (SafeTensors.Tensor t : tensors.values()) {
      byte[] raw = t.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
      if (header.length() > 1) header.append(',');
      header.append('"').append(t.name()).append("\":{\"dtype\":\"").append(t.dtype()).append("\",\"shape\":")
          .append(Arrays.toString(t.shape())).append(",\"data_offsets\":[").append(offset).append(',')
          .append(offset + raw.length).append("]}");
      blobs.add(raw);
      offset += raw.length;
    }
    byte[] headerBytes = header.append('}').toString().getBytes(StandardCharsets.UTF_8);
    ByteBuffer file = ByteBuffer.allocate((int) (8 + headerBytes.length + offset)).order(ByteOrder.LITTLE_ENDIAN);
    file.putLong(headerBytes.length).put(headerBytes);
    blobs.forEach(file::put);
    Files.write(dir.resolve(TrainedModel.WEIGHTS_FILE), file.array());
  }

  private static byte[] resource(String path) throws IOException {
    try (InputStream in = TrainedModelTest.class.getResourceAsStream(path)) {
      if (in == null) throw new IOException(path + " missing: run tools/sphinx_tiny/export.py");
      return in.readAllBytes();
    }
  }

  private static Struct json(byte[] bytes) throws IOException {
    Struct.Builder b = Struct.newBuilder();
    JsonFormat.parser().merge(new String(bytes, StandardCharsets.UTF_8), b);
    return b.build();
  }
}
