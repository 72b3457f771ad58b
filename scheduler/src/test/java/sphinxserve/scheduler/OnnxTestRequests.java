package sphinxserve.scheduler;

import java.util.SplittableRandom;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelSpec;

/** Deterministic prompts and image embeddings for the engine tests that run the real ONNX runtime. */
final class OnnxTestRequests {

  private OnnxTestRequests() {}

  /**
   * Prompt {@code i}: BOS, random text ids up to {@code imageStart}, the image span's placeholders, then
   * {@code numTailTokens} more random text ids (ids from 5 up, below the special ones of the test bundles).
   */
  static int[] prompt(ModelSpec spec, int i, int imageStart, int numTailTokens) {
    SplittableRandom random = new SplittableRandom(i);
    int imageTokens = spec.vision().tokensPerImage();
    int[] prompt = new int[imageStart + imageTokens + numTailTokens];
    prompt[0] = spec.specialTokens().bos();
    for (int p = 1; p < prompt.length; p++) {
      boolean isImage = p >= imageStart && p < imageStart + imageTokens;
      prompt[p] = isImage ? spec.specialTokens().imagePlaceholder() : 5 + random.nextInt(spec.vocabSize() - 5);
    }
    return prompt;
  }

  /** Even-numbered requests carry an image (random embeddings, digest by number); odd ones none. */
  static ImageEmbeddings image(ModelSpec spec, int i) {
    if (i % 2 == 1) return null;
    int rows = spec.vision().tokensPerImage();
    float[] data = new float[rows * spec.hiddenSize()];
    SplittableRandom random = new SplittableRandom(1000 + i);
    for (int k = 0; k < data.length; k++) data[k] = (float) random.nextGaussian();
    return new ImageEmbeddings("image-" + i, rows, spec.hiddenSize(), data);
  }
}
