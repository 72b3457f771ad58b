package sphinxserve.server.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.SafeTensors;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.model.SphinxExport;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;
import sphinxserve.server.generate.PromptRenderer;

/**
 * SPHINX as LLaMA2-Accessory computes it, served by the node. {@code /sphinx-accessory-export/} is what
 * {@code tools/sphinx_export/accessory_fixture.py} wrote: Accessory's own llama_ens5 (Blip2Model's Q-Former, open_clip
 * ViT-L-14 and convnext_xxlarge, DINOv2 vitg14, fairscale decoder layers) at reduced widths with random weights, saved
 * as two model-parallel shards, exported by {@code export_sphinx.py}; beside it, Accessory's {@code encode_image} rows
 * and {@code forward_inference} logits for three images (wide, EXIF-rotated, 448 square) and SPHINX's prompt template.
 *
 * <p>The bundle is built by the real builder and run on ONNX Runtime; the images go through the node's own decoder
 * (EXIF applied: Accessory's side was given {@code ImageOps.exif_transpose}'s upright image) and view maker. Once from
 * Accessory's own 8-bit 448 image (its PadToSquare + Resize output), once from the files. The one expected difference
 * is measured, not guessed: SPHINX resizes its global view in float16 ({@code F.interpolate(image.half())}), the node
 * in float32; everything else agrees to float32 rounding, and the greedy tokens are Accessory's.
 */
class AccessoryParityTest {

  private static final String DIR = "/sphinx-accessory-export/";
  private static final String[] IMAGES = {"wide.png", "exif-rotated.png", "square.png"};
  /** The questions accessory_fixture.py asked about {@link #IMAGES}, in Accessory's conv_v1_2 template. */
  private static final String[] QUESTIONS = {"What is in the image?", "Describe the picture in detail.", "How many circles are there?"};
  private static final int BLOCK_SIZE = 16;

  /**
   * View 0's rows: the node resizes the global view in float32, SPHINX in float16 (≤ 1.6e-3 per pixel). Measured
   * 1.2e-3 to 1.75e-3 here; PyTorch itself, fed the float32 global view, differs from encode_image by the same 1.75e-3
   * on case 0, so this is the float16 resize and nothing of the export.
   */
  private static final double GLOBAL_VIEW_ROWS = 3e-3;

  /** The four tiles' rows: ONNX Runtime against PyTorch, float32 both (measured 2.4e-6 to 7.9e-6). */
  private static final double TILE_ROWS = 5e-5;

  /** Logits on the node's own image rows (which carry the global view's difference): measured 7.8e-5 to 8.7e-5. */
  private static final double LOGITS = 5e-4;

  private static Bundle bundle;
  private static SafeTensors reference;

  @BeforeAll
  static void buildBundle(@TempDir Path tmp) throws Exception {
    SphinxExport model = SphinxExport.open(resourceDir(), 0);
    BundleBuilder.build(model, WeightQuantization.NONE, "test", tmp.resolve("bundle"));
    bundle = Bundle.open(tmp.resolve("bundle"));
    reference = SafeTensors.parse(resource("accessory_reference.safetensors"), "accessory_reference.safetensors");
  }

  /**
   * The node's own prompt path (the bundle's fixed SPHINX template, its tokenizer, the image placeholders after BOS)
   * gives exactly the ids Accessory's conv_v1_2 prompt gave, so the logits below are compared on the prompt a user
   * of the node sends.
   */
  @Test
  void theNodesPromptIsAccessorysConvV12Prompt() throws Exception {
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(bundle.tokenizerFile())) {
      PromptRenderer renderer = new PromptRenderer(bundle.spec(), tokenizer);
      for (int i = 0; i < QUESTIONS.length; i++) {
        int[] expected = Arrays.stream(reference.get("case" + i + "_ids").longs()).mapToInt(Math::toIntExact).toArray();
        Message question = Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText(QUESTIONS[i])).build();
        assertArrayEquals(expected, renderer.render(List.of(question), true), "case " + i + ": " + QUESTIONS[i]);
      }
    }
  }

  @Test
  void imageRowsFromAccessorysOwnPixelsMatchEncodeImage() throws IOException {
    int perView = bundle.spec().vision().tokensPerView() * bundle.spec().hiddenSize();
    try (Session s = new Session(1)) {
      for (int i = 0; i < IMAGES.length; i++) {
        float[] rows = s.rows(decode("case" + i + "-accessory448.png"));
        float[] expected = reference.get("case" + i + "_rows").floats();
        double global = worst(Arrays.copyOf(expected, perView), Arrays.copyOf(rows, perView));
        double tiles = worst(Arrays.copyOfRange(expected, perView, expected.length), Arrays.copyOfRange(rows, perView, rows.length));
        System.out.printf("case %d from Accessory's 448 pixels: global-view rows %.3g, tile rows %.3g%n", i, global, tiles);
        assertTrue(global <= GLOBAL_VIEW_ROWS, "case " + i + " global-view rows: " + global);
        assertTrue(tiles <= TILE_ROWS, "case " + i + " tile rows: " + tiles);
      }
    }
  }

  @Test
  void imageRowsAndLogitsFromTheFilesMatchAccessorysForward() throws IOException {
    int vocab = bundle.spec().vocabSize();
    for (int i = 0; i < IMAGES.length; i++) {
      int[] prompt = Arrays.stream(reference.get("case" + i + "_ids").longs()).mapToInt(Math::toIntExact).toArray();
      long[] greedy = reference.get("case" + i + "_greedy").longs();
      float[] logits = reference.get("case" + i + "_logits").floats();
      try (Session s = new Session((prompt.length + greedy.length) / BLOCK_SIZE + 2)) {
        float[] rows = s.rows(decode(IMAGES[i]));
        float[] expectedRows = reference.get("case" + i + "_rows").floats();
        int perView = bundle.spec().vision().tokensPerView() * bundle.spec().hiddenSize();
        double global = worst(Arrays.copyOf(expectedRows, perView), Arrays.copyOf(rows, perView));
        double tiles = worst(Arrays.copyOfRange(expectedRows, perView, expectedRows.length), Arrays.copyOfRange(rows, perView, rows.length));
        ImageEmbeddings image = new ImageEmbeddings("case" + i, bundle.spec().vision().tokensPerImage(), bundle.spec().hiddenSize(), rows);
        float[] row = new float[vocab];
        StepOutput out = s.runtime.step(List.of(new SequenceStep(prompt, 0, s.blockTable, image, 1, true)));
        out.copyRow(0, row);
        double logitErr = worst(Arrays.copyOfRange(logits, 0, vocab), row);
        for (int t = 0; t < greedy.length; t++) {
          assertEquals(greedy[t], argmax(row), "case " + i + " greedy token " + t);
          out = s.runtime.step(List.of(new SequenceStep(new int[] {(int) greedy[t]}, prompt.length + t, s.blockTable, image, 1, true)));
          out.copyRow(0, row);
          logitErr = Math.max(logitErr, worst(Arrays.copyOfRange(logits, (t + 1) * vocab, (t + 2) * vocab), row));
        }
        System.out.printf("case %d %s: global-view rows %.3g, tile rows %.3g, logits (prompt + %d greedy) %.3g%n", i, IMAGES[i],
            global, tiles, greedy.length, logitErr);
        assertTrue(global <= GLOBAL_VIEW_ROWS, "case " + i + " global-view rows: " + global);
        assertTrue(tiles <= TILE_ROWS, "case " + i + " tile rows (the host's 8-bit resize included): " + tiles);
        assertTrue(logitErr <= LOGITS, "case " + i + " logits: " + logitErr);
      }
    }
  }

  /** One runtime over a KV cache of {@code numBlocks} blocks, the block table 0..numBlocks−1. */
  private static final class Session implements AutoCloseable {
    final KvCacheStorage kv;
    final OnnxModelRuntime runtime;
    final int[] blockTable;
    final ViewPreprocessor views = new ViewPreprocessor(bundle.spec().vision());

    Session(int numBlocks) {
      kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, numBlocks));
      runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv);
      blockTable = new int[numBlocks];
      for (int i = 0; i < numBlocks; i++) blockTable[i] = i;
    }

    float[] rows(DecodedImage image) {
      return runtime.encodeViews(views.preprocess(image), bundle.spec().vision().numViews());
    }

    @Override
    public void close() {
      runtime.close();
      kv.close();
    }
  }

  /** The largest error, relative to max(1, |expected|). */
  private static double worst(float[] expected, float[] actual) {
    assertEquals(expected.length, actual.length, "length");
    double worst = 0;
    for (int i = 0; i < expected.length; i++) {
      worst = Math.max(worst, Math.abs(expected[i] - actual[i]) / Math.max(1.0, Math.abs(expected[i])));
    }
    return worst;
  }

  private static int argmax(float[] row) {
    int best = 0;
    for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }

  private static DecodedImage decode(String name) throws IOException {
    return new ImageDecoder(ImageLimits.DEFAULT).decode(resource(name));
  }

  private static Path resourceDir() throws URISyntaxException {
    return Path.of(AccessoryParityTest.class.getResource(DIR).toURI());
  }

  private static byte[] resource(String name) throws IOException {
    try (InputStream in = AccessoryParityTest.class.getResourceAsStream(DIR + name)) {
      if (in == null) throw new IOException(DIR + name + " missing: run tools/sphinx_export/accessory_fixture.py");
      return in.readAllBytes();
    }
  }
}
