package sphinxserve.runtime.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.SequenceStep;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.testing.Numerics;
import sphinxserve.runtime.testing.TestBundles;

/**
 * int8 and int4 bundles ({@code build-bundle --quantize}) as the node serves them: the manifest records the
 * quantization, the bundle id differs from the float32 bundle's, the build is deterministic, and the logits
 * stay close to float32's through the real ONNX runtime: on random presets by relative error over greedy
 * steps, on the trained SPHINX-tiny by next-token agreement and log-likelihood (docs/BUNDLE.md has the numbers).
 */
class QuantizedBundleTest {

  private static final int BLOCK_SIZE = 16;

  @Test
  void manifestRecordsTheQuantizationAndTheIdDiffers(@TempDir Path dir) throws IOException {
    Bundle fp32 = TestBundles.get(BundlePreset.TEST);
    BundleBuilder.build(BundlePreset.TEST, TestBundles.SEED, WeightQuantization.named("int4"), dir);
    Bundle int4 = Bundle.open(dir);
    Quantization q = int4.manifest().getQuantization();
    assertEquals("int4", q.getWeights());
    assertEquals(32, q.getBlockSize());
    assertEquals(WeightQuantization.DEFAULT_ACCURACY_LEVEL, q.getAccuracyLevel());
    int layers = BundlePreset.TEST.decoder().numLayers();
    assertEquals(7 * layers + 1, q.getTensorsCount(), q.getTensorsMap().toString());
    assertEquals("int4", q.getTensorsOrThrow("layers.1.down_proj"));
    assertEquals("int8", q.getTensorsOrThrow("lm_head"));
    assertFalse(q.containsTensors("embed_tokens"));
    assertEquals("float32", int4.manifest().getDtype());
    assertFalse(fp32.manifest().hasQuantization());
    assertNotEquals(BundleFiles.bundleId(fp32.manifest().getFilesMap()), BundleFiles.bundleId(int4.manifest().getFilesMap()));
    assertTrue(Files.size(dir.resolve(BundleFiles.DECODER)) < Files.size(fp32.directory().resolve(BundleFiles.DECODER)));
  }

  @Test
  void sameSettingsBuildByteIdenticalBundles(@TempDir Path a, @TempDir Path b) throws IOException {
    WeightQuantization int8 = WeightQuantization.named("int8");
    BundleBuilder.build(BundlePreset.TEST, 3, int8, a);
    BundleBuilder.build(BundlePreset.TEST, 3, int8, b);
    for (String file : List.of(BundleFiles.MANIFEST, BundleFiles.DECODER)) {
      assertArrayEquals(Files.readAllBytes(a.resolve(file)), Files.readAllBytes(b.resolve(file)), file);
    }
  }

  /**
   * Logits of a random preset over a prompt and 6 greedy steps (the float32 model's tokens fed to both):
   * max |Δ| / max |float32| per row, worst row asserted under the floor.
   */
  @ParameterizedTest
  @CsvSource({"TEST, int8, 0.05", "TEST, int4, 0.35", "TINY, int8, 0.05", "TINY, int4, 0.35"})
  void logitsStayCloseToFloat32(BundlePreset preset, String mode, double ceiling, @TempDir Path dir) throws IOException {
    Bundle fp32 = TestBundles.get(preset);
    BundleBuilder.build(preset, TestBundles.SEED, WeightQuantization.named(mode), dir);
    Bundle quantized = Bundle.open(dir);
    int vocab = preset.decoder().vocabSize();
    SplittableRandom random = new SplittableRandom(7);
    int[] prompt = new int[24];
    prompt[0] = fp32.spec().specialTokens().bos();
    for (int i = 1; i < prompt.length; i++) prompt[i] = 5 + random.nextInt(vocab - 5);

    List<float[]> expected = new ArrayList<>();
    int[] greedy = run(fp32, prompt, null, 6, null, expected);
    List<float[]> actual = new ArrayList<>();
    run(quantized, prompt, greedy, 6, null, actual);
    double worst = 0;
    for (int s = 0; s < expected.size(); s++) worst = Math.max(worst, Numerics.relativeError(actual.get(s), expected.get(s)));
    System.out.printf(Locale.ROOT, "%s %s: logits relative error (max over %d rows) %.4f%n", preset, mode, expected.size(), worst);
    assertTrue(worst < ceiling, preset + " " + mode + ": logits relative error " + worst);
  }

  /**
   * The trained SPHINX-tiny on the parity sample (an image, a question, PyTorch's greedy answer), token by token
   * after the image: the quantized model's next-token argmax agrees with float32's at most positions and its
   * mean log-likelihood of the sample's tokens stays close.
   */
  @ParameterizedTest
  @CsvSource({"int8, int8, 0.94, 0.04", "int4, int8, 0.78, 0.20", "int4, int4, 0.74, 0.20", "int4, none, 0.78, 0.20"})
  void trainedModelAgreesWithFloat32(String mode, String head, double agreementFloor, double nllCeiling,
      @TempDir Path dir) throws IOException {
    TrainedModel model = TrainedModel.embedded("sphinx-tiny");
    BundleBuilder.build(model, dir.resolve("fp32"));
    BundleBuilder.build(model, WeightQuantization.named(mode).withHeadBits(WeightQuantization.headBits(head)), dir.resolve(mode));
    Bundle fp32 = Bundle.open(dir.resolve("fp32"));
    Bundle quantized = Bundle.open(dir.resolve(mode));
    SafeTensors parity = SafeTensors.parse(resource("/sphinx-tiny/parity.safetensors"), "parity.safetensors");
    int[] prompt = Arrays.stream(parity.get("prompt_ids").longs()).mapToInt(Math::toIntExact).toArray();
    int[] answer = Arrays.stream(parity.get("greedy_ids").longs()).mapToInt(Math::toIntExact).toArray();
    int[] sample = new int[prompt.length + answer.length];
    System.arraycopy(prompt, 0, sample, 0, prompt.length);
    System.arraycopy(answer, 0, sample, prompt.length, answer.length);
    float[] pixels = parity.get("pixel_values").floats();
    int prefix = 1 + fp32.spec().vision().tokensPerImage(); // BOS and the image, in one chunk

    List<float[]> expected = new ArrayList<>();
    List<float[]> actual = new ArrayList<>();
    int forced = sample.length - prefix - 1;
    int[] continuation = Arrays.copyOfRange(sample, prefix, sample.length - 1);
    run(fp32, Arrays.copyOf(sample, prefix), continuation, forced, pixels, expected);
    run(quantized, Arrays.copyOf(sample, prefix), continuation, forced, pixels, actual);
    int agree = 0;
    double nllExpected = 0;
    double nllActual = 0;
    for (int s = 0; s < expected.size(); s++) {
      if (argmax(expected.get(s)) == argmax(actual.get(s))) agree++;
      int target = sample[prefix + s];
      nllExpected -= logSoftmax(expected.get(s), target);
      nllActual -= logSoftmax(actual.get(s), target);
    }
    int n = expected.size();
    double agreement = (double) agree / n;
    double nllDelta = (nllActual - nllExpected) / n;
    System.out.printf(Locale.ROOT, "sphinx-tiny %s (lm_head %s): next-token agreement %d/%d = %.3f; mean NLL float32 %.4f, quantized %.4f (Δ %+.4f)%n",
        mode, head, agree, n, agreement, nllExpected / n, nllActual / n, nllDelta);
    assertTrue(agreement >= agreementFloor, mode + ": agreement " + agreement);
    assertTrue(Math.abs(nllDelta) < nllCeiling, mode + ": mean NLL difference " + nllDelta);
  }

  /**
   * Prefills {@code prompt} (with the image of {@code pixels} at position 1 when given), then takes {@code steps}
   * single-token steps feeding {@code forced} (or the argmax when null); adds every logits row to {@code rows}
   * and returns the tokens fed.
   */
  private static int[] run(Bundle bundle, int[] prompt, int[] forced, int steps, float[] pixels, List<float[]> rows) {
    int total = prompt.length + steps;
    int numBlocks = total / BLOCK_SIZE + 2;
    int[] table = new int[numBlocks];
    for (int i = 0; i < numBlocks; i++) table[i] = i;
    int[] fed = new int[steps];
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      ImageEmbeddings image = pixels == null ? null : new ImageEmbeddings("parity", bundle.spec().vision().tokensPerImage(),
          bundle.spec().hiddenSize(), runtime.encodeViews(pixels, bundle.spec().vision().numViews()));
      float[] row = new float[bundle.spec().vocabSize()];
      runtime.step(List.of(new SequenceStep(prompt, 0, table, image, 1, true))).copyRow(0, row);
      rows.add(row.clone());
      for (int s = 0; s < steps; s++) {
        fed[s] = forced != null ? forced[s] : argmax(row);
        runtime.step(List.of(new SequenceStep(new int[] {fed[s]}, prompt.length + s, table, image, 1, true))).copyRow(0, row);
        rows.add(row.clone());
      }
    }
    return fed;
  }

  private static int argmax(float[] row) {
    int best = 0;
    for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }

  private static double logSoftmax(float[] row, int target) {
    double max = Double.NEGATIVE_INFINITY;
    for (float v : row) max = Math.max(max, v);
    double sum = 0;
    for (float v : row) sum += Math.exp(v - max);
    return row[target] - max - Math.log(sum);
  }

  private static byte[] resource(String path) throws IOException {
    try (InputStream in = QuantizedBundleTest.class.getResourceAsStream(path)) {
      if (in == null) throw new IOException(path + " missing: run tools/sphinx_tiny/export.py");
      return in.readAllBytes();
    }
  }
}
