package sphinxserve.runtime.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.List;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.SafeTensors;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;

/**
 * What PyTorch computed for SPHINX-tiny ({@code /sphinx-tiny/parity.safetensors}, written by
 * tools/sphinx_tiny/export.py): pixel values, image embeddings, a prompt, eight greedy ids and the logits after the
 * prompt and after each of them. Any bundle of that model (the Java builder's, the exporter's) must reproduce them.
 */
public final class SphinxTinyParity {

  /** Errors allowed, relative to max(1, |expected|) per value. */
  public static final double TOLERANCE = 1e-4;

  private static final int BLOCK_SIZE = 16;

  private final SafeTensors fixture;

  private SphinxTinyParity(SafeTensors fixture) {
    this.fixture = fixture;
  }

  /** The fixture from the classpath. */
  public static SphinxTinyParity load() throws IOException {
    try (InputStream in = SphinxTinyParity.class.getResourceAsStream("/sphinx-tiny/parity.safetensors")) {
      if (in == null) throw new IOException("/sphinx-tiny/parity.safetensors missing: run tools/sphinx_tiny/export.py");
      return new SphinxTinyParity(SafeTensors.parse(in.readAllBytes(), "parity.safetensors"));
    }
  }

  /** The five views PyTorch encoded. */
  public float[] pixelValues() {
    return fixture.get("pixel_values").floats();
  }

  /** PyTorch's image embeddings of {@link #pixelValues}. */
  public float[] imageEmbeds() {
    return fixture.get("image_embeds").floats();
  }

  /**
   * Runs the prompt with {@code imageEmbeds} at position 1, then the recorded greedy tokens one step at a time, on
   * {@code bundle}; every logits row and every greedy choice must be PyTorch's.
   */
  public void assertDecoderMatches(Bundle bundle, float[] imageEmbeds) {
    int[] prompt = Arrays.stream(fixture.get("prompt_ids").longs()).mapToInt(Math::toIntExact).toArray();
    long[] greedy = fixture.get("greedy_ids").longs();
    float[] expectedLogits = fixture.get("logits").floats();
    int vocab = bundle.spec().vocabSize();
    int numBlocks = (prompt.length + greedy.length) / BLOCK_SIZE + 2;
    try (KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), BLOCK_SIZE, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), kv)) {
      int[] blockTable = new int[numBlocks];
      for (int i = 0; i < numBlocks; i++) blockTable[i] = i;
      ImageEmbeddings image = new ImageEmbeddings("parity", bundle.spec().vision().tokensPerImage(), bundle.spec().hiddenSize(), imageEmbeds);
      float[] row = new float[vocab];
      StepOutput out = runtime.step(List.of(new SequenceStep(prompt, 0, blockTable, image, 1, true)));
      out.copyRow(0, row);
      assertClose(Arrays.copyOfRange(expectedLogits, 0, vocab), row, "logits after the prompt");
      for (int s = 0; s < greedy.length; s++) {
        assertEquals(greedy[s], argmax(row), "greedy token " + s);
        out = runtime.step(List.of(new SequenceStep(new int[] {(int) greedy[s]}, prompt.length + s, blockTable, image, 1, true)));
        out.copyRow(0, row);
        assertClose(Arrays.copyOfRange(expectedLogits, (s + 1) * vocab, (s + 2) * vocab), row, "logits after greedy token " + s);
      }
    }
  }

  /** Each value within {@link #TOLERANCE} of the expected one, relative to max(1, |expected|). */
  public static void assertClose(float[] expected, float[] actual, String what) {
    assertEquals(expected.length, actual.length, what + " length");
    double worst = 0;
    int at = -1;
    for (int i = 0; i < expected.length; i++) {
      double err = Math.abs(expected[i] - actual[i]) / Math.max(1.0, Math.abs(expected[i]));
      if (err > worst) {
        worst = err;
        at = i;
      }
    }
    assertTrue(worst <= TOLERANCE, what + ": worst error " + worst + " at " + at + " (expected " + expected[Math.max(at, 0)]
        + ", got " + actual[Math.max(at, 0)] + ")");
  }

  private static int argmax(float[] row) {
    int best = 0;
    for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  }
}
