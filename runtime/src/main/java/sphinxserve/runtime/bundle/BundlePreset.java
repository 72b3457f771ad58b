package sphinxserve.runtime.bundle;

import java.util.Locale;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.VisionShape;

/**
 * The sizes the bundle builder knows. All keep SPHINX-1k's view layout (a global view plus a 2×2 grid).
 *
 * <ul>
 *   <li>{@code TEST}: builds in well under a second; unit tests.
 *   <li>{@code TINY}: the embedded default model; 448-pixel images, 75 tokens per view.
 *   <li>{@code BENCH}: SPHINX's real token geometry (291 tokens per view, 1,455 per image), hidden 512,
 *       8 layers, GQA 8/2, a 32,000-token vocabulary: costs what a small real model costs per token.
 * </ul>
 */
public enum BundlePreset {
  TEST(new DecoderShape(512, 64, 2, 4, 2, 16, 172, 1024, 10000.0, 1e-5f),
      new VisionShape(56, 14, 32, 1, 2, 16, 4, 64), 112, 2),
  TINY(new DecoderShape(2048, 128, 4, 4, 2, 32, 344, 2048, 10000.0, 1e-5f),
      new VisionShape(224, 28, 64, 2, 4, 32, 8, 128), 448, 2),
  BENCH(new DecoderShape(32000, 512, 8, 8, 2, 64, 1408, 4096, 10000.0, 1e-5f),
      new VisionShape(224, 14, 192, 2, 3, 96, 32, 512), 448, 2);

  private final DecoderShape decoder;
  private final VisionShape vision;
  private final int imageSize;
  private final int grid;

  BundlePreset(DecoderShape decoder, VisionShape vision, int imageSize, int grid) {
    this.decoder = decoder;
    this.vision = vision;
    this.imageSize = imageSize;
    this.grid = grid;
  }

  public DecoderShape decoder() {
    return decoder;
  }

  public VisionShape vision() {
    return vision;
  }

  public int imageSize() {
    return imageSize;
  }

  public int grid() {
    return grid;
  }

  /** The preset named {@code name} (case-insensitive), or an error listing the names. */
  public static BundlePreset named(String name) {
    try {
      return valueOf(name.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("unknown preset '" + name + "'; known: test, tiny, bench");
    }
  }
}
