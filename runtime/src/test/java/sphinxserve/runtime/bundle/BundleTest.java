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
