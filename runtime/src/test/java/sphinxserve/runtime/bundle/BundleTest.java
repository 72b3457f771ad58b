package sphinxserve.runtime.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;

/** Building, opening and refusing bundles. */
class BundleTest {

  private final Bundle bundle = TestBundles.get(BundlePreset.TEST);

  @Test
  void build_samePresetAndSeedGivesByteIdenticalFiles(@TempDir Path again) throws IOException {
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED, again);
    for (String file : List.of(BundleFiles.MANIFEST, BundleFiles.DECODER, BundleFiles.VISION, BundleFiles.TOKENIZER)) {
      assertArrayEquals(Files.readAllBytes(bundle.directory().resolve(file)), Files.readAllBytes(again.resolve(file)), file);
    }
  }

  @Test
  void build_otherSeedGivesOtherWeightsAndBundleId(@TempDir Path other) throws IOException {
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED + 1, other);
    assertTrue(!bundle.spec().bundleId().equals(Bundle.open(other).spec().bundleId()));
  }

  @Test
  void open_describesThePreset() {
    var spec = bundle.spec();
    var preset = BundlePreset.TEST;
    assertEquals(preset.decoder().vocabSize(), spec.vocabSize());
    assertEquals(preset.decoder().numKvHeads(), spec.numKvHeads());
    assertEquals(5, spec.vision().numViews());
    assertEquals(5 * preset.vision().tokensPerView(), spec.vision().tokensPerImage());
    assertEquals(List.of("\n###"), spec.stopStrings());
    assertEquals(64, spec.bundleId().length());
  }

  @Test
  void bytesOnDisk_sumsTheGraphsAndTokenizerNotTheManifest() throws IOException {
    long expected = 0;
    for (String file : List.of(BundleFiles.DECODER, BundleFiles.VISION, BundleFiles.TOKENIZER)) {
      expected += Files.size(bundle.directory().resolve(file));
    }
    assertEquals(expected, bundle.bytesOnDisk());
  }

  @Test
  void open_missingDirectoryNamesIt(@TempDir Path dir) {
    var e = assertThrows(BundleException.class, () -> Bundle.open(dir.resolve("nope")));
    assertTrue(e.getMessage().contains("nope") && e.getMessage().contains("not a directory"), e.getMessage());
  }

  @Test
  void open_missingManifestNamesIt(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Files.delete(dir.resolve(BundleFiles.MANIFEST));
    assertMessage(dir, "bundle.json: missing");
  }

  @Test
  void open_missingGraphNamesTheFile(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Files.delete(dir.resolve(BundleFiles.DECODER));
    assertMessage(dir, "decoder.onnx: missing");
  }

  @Test
  void open_corruptFileNamesItAndTheHashes(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Path vision = dir.resolve(BundleFiles.VISION);
    byte[] bytes = Files.readAllBytes(vision);
    bytes[bytes.length / 2] ^= 0x5A;
    Files.write(vision, bytes);
    assertMessage(dir, "vision.onnx: corrupt or replaced");
  }

  @Test
  void open_malformedManifestNamesIt(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Files.writeString(dir.resolve(BundleFiles.MANIFEST), "{\"format_version\": 1, \"decoder\": [");
    assertMessage(dir, "bundle.json: not a valid manifest");
  }

  @Test
  void open_unknownManifestFieldIsRefused(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    editManifest(dir, "\"dtype\": \"float32\"", "\"dtype\": \"float32\", \"colour\": \"blue\"");
    assertMessage(dir, "bundle.json: not a valid manifest");
  }

  @Test
  void open_inconsistentManifestSaysWhich(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    editManifest(dir, "\"num_kv_heads\": 2", "\"num_kv_heads\": 3");
    assertMessage(dir, "decoder.num_heads must be a multiple of decoder.num_kv_heads");
  }

  @Test
  void runtime_manifestGraphMismatchNamesTheTensor(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    int vocab = bundle.spec().vocabSize();
    editManifest(dir, "\"vocab_size\": " + vocab, "\"vocab_size\": " + (vocab + 8));
    Bundle edited = Bundle.open(dir);
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(edited.spec(), 16, 8))) {
      var e = assertThrows(BundleException.class, () -> OnnxModelRuntime.open(edited, RuntimeOptions.cpu(), storage));
      assertTrue(e.getMessage().contains("decoder.onnx") && e.getMessage().contains("'logits'"), e.getMessage());
    }
  }

  @Test
  void runtime_graphSwappedForAnotherNamesTheMissingTensor(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Files.copy(dir.resolve(BundleFiles.VISION), dir.resolve(BundleFiles.DECODER), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    editManifest(dir, bundle.manifest().getFilesMap().get(BundleFiles.DECODER), BundleFiles.sha256(dir.resolve(BundleFiles.DECODER)));
    Bundle edited = Bundle.open(dir);
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(edited.spec(), 16, 8))) {
      var e = assertThrows(BundleException.class, () -> OnnxModelRuntime.open(edited, RuntimeOptions.cpu(), storage));
      assertTrue(e.getMessage().contains("decoder.onnx: input tensor 'input_ids' is missing"), e.getMessage());
    }
  }

  /** An external-data location that is absolute is refused at open, naming the graph, the initializer and the path. */
  @Test
  void open_externalDataAtAnAbsolutePath_isRefusedNamingTheInitializer(@TempDir Path dir, @TempDir Path elsewhere) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Path outside = elsewhere.resolve("weights.data");
    String tensor = externalizeFirstInitializer(dir, outside.toString(), outside);
    assertMessage(dir, BundleFiles.DECODER + ": initializer '" + tensor + "' has external data location '" + outside + "': an absolute path");
  }

  @Test
  void open_externalDataEscapingWithDotDot_isRefused(@TempDir Path dir, @TempDir Path elsewhere) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Path outside = elsewhere.resolve("weights.data");
    String location = dir.relativize(outside).toString(); // ../<elsewhere>/weights.data
    String tensor = externalizeFirstInitializer(dir, location, outside);
    assertMessage(dir, "initializer '" + tensor + "' has external data location '" + location + "': a path with '..'");
  }

  @Test
  void open_externalDataThroughALinkOutOfTheFolder_isRefused(@TempDir Path dir, @TempDir Path elsewhere) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Path outside = elsewhere.resolve("weights.data");
    String tensor = externalizeFirstInitializer(dir, "link.data", outside);
    Files.createSymbolicLink(dir.resolve("link.data"), outside);
    assertMessage(dir, "initializer '" + tensor + "' has external data location 'link.data': a link to " + outside.toRealPath() + ", outside the folder");
  }

  /** The control: the same graph with its data inside the folder (through a link that stays inside) opens and runs. */
  @Test
  void open_externalDataThroughALinkInsideTheFolder_opensAndRuns(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    externalizeFirstInitializer(dir, "alias.data", dir.resolve("weights.data"));
    Files.createSymbolicLink(dir.resolve("alias.data"), dir.resolve("weights.data"));
    Bundle opened = Bundle.open(dir);
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(opened.spec(), 16, 8));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(opened, RuntimeOptions.cpu(), storage)) {
      assertEquals(bundle.spec().vocabSize(), runtime.spec().vocabSize());
    }
  }

  @Test
  void open_externalDataFileMissing_isRefusedNamingIt(@TempDir Path dir) throws IOException {
    TestBundles.copyOf(bundle, dir);
    String tensor = externalizeFirstInitializer(dir, "gone.data", null);
    assertMessage(dir, "initializer '" + tensor + "': its external data file 'gone.data' is missing");
  }

  @Test
  void open_manifestListingAFileOutsideTheFolder_isRefused(@TempDir Path dir, @TempDir Path elsewhere) throws IOException {
    TestBundles.copyOf(bundle, dir);
    Path outside = Files.writeString(elsewhere.resolve("secret.txt"), "not a bundle file");
    String name = dir.relativize(outside).toString();
    editManifest(dir, "\"files\": {", "\"files\": {\n    \"" + name + "\": \"" + BundleFiles.sha256(outside) + "\",");
    assertMessage(dir, "bundle.json: files lists '" + name + "', a path outside the bundle's folder");
  }

  /**
   * Moves the decoder's first inline initializer of 4 KiB or more out to {@code data} (none: left unwritten), refers to it
   * as {@code location}, and records the new graph's SHA-256 in the manifest, as a crafted bundle would; returns the
   * initializer's name.
   */
  private static String externalizeFirstInitializer(Path dir, String location, Path data) throws IOException {
    Path graph = dir.resolve(BundleFiles.DECODER);
    String oldHash = BundleFiles.sha256(graph);
    var model = sphinxserve.runtime.onnx.ModelProto.parseFrom(Files.readAllBytes(graph)).toBuilder();
    var g = model.getGraphBuilder();
    for (int i = 0; i < g.getInitializerCount(); i++) {
      var t = g.getInitializerBuilder(i);
      if (t.getRawData().size() < 4096) continue;
      if (data != null) Files.write(data, t.getRawData().toByteArray());
      t.setDataLocation(sphinxserve.runtime.onnx.TensorProto.DataLocation.EXTERNAL).clearRawData()
          .addExternalData(entry("location", location)).addExternalData(entry("offset", "0"))
          .addExternalData(entry("length", Long.toString(data == null ? 4096 : Files.size(data))));
      Files.write(graph, model.build().toByteArray());
      editManifest(dir, oldHash, BundleFiles.sha256(graph));
      return t.getName();
    }
    throw new AssertionError("the test bundle's decoder has no initializer of 4 KiB");
  }

  private static sphinxserve.runtime.onnx.StringStringEntryProto entry(String key, String value) {
    return sphinxserve.runtime.onnx.StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
  }

  private static void editManifest(Path dir, String from, String to) throws IOException {
    Path manifest = dir.resolve(BundleFiles.MANIFEST);
    String text = Files.readString(manifest, StandardCharsets.UTF_8);
    assertTrue(text.contains(from), "manifest holds " + from);
    Files.writeString(manifest, text.replace(from, to), StandardCharsets.UTF_8);
  }

  private static void assertMessage(Path dir, String expected) {
    var e = assertThrows(BundleException.class, () -> Bundle.open(dir));
    assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
  }
}
