package sphinxserve.server.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import sphinxserve.api.VisionSpec;

/**
 * The five views against an independent computation: padding pixel by pixel, then the bicubic resize with
 * every output a direct sum over all source samples (no precomputed windows), from the formulas of Keys
 * (a = −0.5) and Pillow's antialiasing (kernel stretched by the scale when downsampling).
 */
final class ViewPreprocessorTest {

  /** TEST-bundle geometry: 112 → 2 × 2 tiles of 56, CLIP normalisation. */
  private static final VisionSpec SPEC = new VisionSpec(112, 2, 56, 4, new int[] {122, 116, 104},
      new float[] {0.48145466f, 0.4578275f, 0.40821073f}, new float[] {0.26862954f, 0.26130258f, 0.27577711f});

  private static final int N = 112;
  private static final int S = 56;

  private static double keys(double x) {
    double a = -0.5;
    x = Math.abs(x);
    if (x < 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
    if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
    return 0;
  }

  /** Weight of source sample {@code i} for output {@code o} when resizing {@code in} samples to {@code out}. */
  private static double weight(int o, int i, int in, int out) {
    double scale = (double) in / out;
    double stretch = Math.max(1, scale);
    return keys((i + 0.5 - (o + 0.5) * scale) / stretch);
  }

  /**
   * Bicubic of a square {@code src[in][in]} to {@code out × out}: rows first, then columns, each output a
   * direct weighted sum over every source sample. With {@code eightBit}, each pass rounds and clamps to
   * 0–255 as Pillow's 8-bit resize does (overshoot of the cubic is clipped between the passes).
   */
  private static double[][] resize(double[][] src, int out, boolean eightBit) {
    int in = src.length;
    double[][] rows = new double[in][out];
    for (int y = 0; y < in; y++) {
      for (int x = 0; x < out; x++) {
        double sum = 0;
        double norm = 0;
        for (int i = 0; i < in; i++) {
          double w = weight(x, i, in, out);
          sum += w * src[y][i];
          norm += w;
        }
        rows[y][x] = eightBit ? to8(sum / norm) : sum / norm;
      }
    }
    double[][] dst = new double[out][out];
    for (int y = 0; y < out; y++) {
      for (int x = 0; x < out; x++) {
        double sum = 0;
        double norm = 0;
        for (int j = 0; j < in; j++) {
          double w = weight(y, j, in, out);
          sum += w * rows[j][x];
          norm += w;
        }
        dst[y][x] = eightBit ? to8(sum / norm) : sum / norm;
      }
    }
    return dst;
  }

  private static double to8(double v) {
    return Math.max(0, Math.min(255, Math.floor(v + 0.5)));
  }

  /** Channel {@code c} of {@code image} padded to a square as documented: centred, offset floor((M − side) / 2). */
  private static double[][] padded(DecodedImage image, int c) {
    int w = image.width();
    int h = image.height();
    int m = Math.max(w, h);
    int[] pad = SPEC.padRgb();
    double[][] p = new double[m][m];
    for (int y = 0; y < m; y++) {
      for (int x = 0; x < m; x++) {
        int ix = x - (m - w) / 2;
        int iy = y - (m - h) / 2;
        boolean inside = ix >= 0 && ix < w && iy >= 0 && iy < h;
        p[y][x] = inside ? image.rgb()[iy * w + ix] >> (16 - 8 * c) & 0xFF : pad[c];
      }
    }
    return p;
  }

  private static double norm(double v255, int c) {
    return (v255 / 255 - SPEC.mean()[c]) / SPEC.std()[c];
  }

  private static float at(float[] views, int view, int c, int y, int x) {
    return views[((view * 3 + c) * S + y) * S + x];
  }

  private static DecodedImage noise(int w, int h, long seed) {
    Random r = new Random(seed);
    int[] rgb = new int[w * h];
    for (int i = 0; i < rgb.length; i++) rgb[i] = r.nextInt(1 << 24);
    return new DecodedImage(w, h, rgb);
  }

  @Test
  void preprocess_fiveViews_matchIndependentComputation() {
    for (DecodedImage image : new DecodedImage[] {noise(150, 90, 1), noise(9, 14, 2)}) { // downsampling, upsampling
      float[] views = new ViewPreprocessor(SPEC).preprocess(image);
      assertEquals(5 * 3 * S * S, views.length);
      // One level: a sum landing on .5 may round either way after floating-point reassociation.
      double tolerance = 1.01 / 255 / 0.26;
      double[][][] full = new double[3][][];
      for (int c = 0; c < 3; c++) {
        double[][] resized = resize(padded(image, c), N, true);
        full[c] = new double[N][N];
        for (int y = 0; y < N; y++) {
          for (int x = 0; x < N; x++) {
            double expected = norm(resized[y][x], c);
            int tile = 1 + (y / S) * 2 + x / S; // row-major: TL, TR, BL, BR
            float actual = at(views, tile, c, y % S, x % S);
            assertEquals(expected, actual, tolerance, "tile " + tile + " channel " + c + " at (" + x + ", " + y + ")");
            full[c][y][x] = actual;
          }
        }
        // The global view: the (production's) normalised N image downsampled to S, no rounding.
        double[][] global = resize(full[c], S, false);
        for (int y = 0; y < S; y++) {
          for (int x = 0; x < S; x++) {
            assertEquals(global[y][x], at(views, 0, c, y, x), 1e-4, "global channel " + c + " at (" + x + ", " + y + ")");
          }
        }
      }
    }
  }

  @Test
  void preprocess_torchRecipe_globalViewIsTorchBicubicOfTheNormalisedSquareTilesUnchanged() {
    VisionSpec torch = new VisionSpec(112, 2, 56, 4, SPEC.padRgb(), SPEC.mean(), SPEC.std(), sphinxserve.api.GlobalViewResize.TORCH_BICUBIC);
    DecodedImage image = noise(150, 90, 3);
    float[] pillowViews = new ViewPreprocessor(SPEC).preprocess(image);
    float[] torchViews = new ViewPreprocessor(torch).preprocess(image);
    int view = 3 * S * S;
    assertArrayEquals(Arrays.copyOfRange(pillowViews, view, 5 * view), Arrays.copyOfRange(torchViews, view, 5 * view), "tiles");
    for (int c = 0; c < 3; c++) {
      float[] square = new float[N * N]; // the normalised 112 square, reassembled from its four tiles
      for (int t = 0; t < 4; t++) {
        for (int y = 0; y < S; y++) {
          System.arraycopy(torchViews, (1 + t) * view + c * S * S + y * S, square, ((t / 2) * S + y) * N + (t % 2) * S, S);
        }
      }
      float[] expected = new float[S * S];
      new TorchBicubic(N, S).resizePlane(square, expected);
      assertArrayEquals(expected, Arrays.copyOfRange(torchViews, c * S * S, (c + 1) * S * S), 1e-6f, "global view, channel " + c);
    }
    assertFalse(Arrays.equals(Arrays.copyOfRange(pillowViews, 0, view), Arrays.copyOfRange(torchViews, 0, view)), "the recipes differ");
  }

  @Test
  void preprocess_tallImage_padsWithClipMeanColour() {
    int red = 0xFF0000;
    int[] rgb = new int[4 * 40];
    java.util.Arrays.fill(rgb, red);
    float[] views = new ViewPreprocessor(SPEC).preprocess(new DecodedImage(4, 40, rgb));
    int[] pad = SPEC.padRgb();
    for (int c = 0; c < 3; c++) {
      // Far left and right of the centred strip: pure padding, in every view that shows it.
      assertEquals(norm(pad[c], c), at(views, 0, c, S / 2, 0), 1e-5);
      assertEquals(norm(pad[c], c), at(views, 1, c, 10, 0), 1e-5);
      assertEquals(norm(pad[c], c), at(views, 4, c, 40, S - 1), 1e-5);
    }
    // The strip itself, at the square's centre column (x = 56 is tile TR's / BR's column 0).
    assertEquals(norm(255, 0), at(views, 2, 0, 30, 0), 1e-5);
    assertEquals(norm(0, 1), at(views, 2, 1, 30, 0), 1e-5);
  }

  @Test
  void preprocess_wideImage_padOffsetIsFloorOfHalfTheDifference() {
    // 112 × 55 pads to 112 × 112 and resizes by exactly 1 (bicubic at scale 1 is the identity), so the padded
    // square is visible as is: 57 pad rows split as 28 above and 29 below.
    int[] rgb = new int[112 * 55];
    java.util.Arrays.fill(rgb, 0xFFFFFF);
    ViewPreprocessor pre = new ViewPreprocessor(SPEC);
    int[] resized = pre.resizePadded(new DecodedImage(112, 55, rgb));
    for (int y = 0; y < N; y++) {
      boolean image = y >= 28 && y < 28 + 55;
      assertEquals(image ? 255 : SPEC.padRgb()[0], resized[(y * N + 50) * 3], "row " + y);
    }
  }

  @Test
  void preprocess_tiles_areRowMajor() {
    // Quadrant colours survive the resize away from the seams: TL red, TR green, BL blue, BR white.
    int[] rgb = new int[112 * 112];
    for (int y = 0; y < 112; y++) {
      for (int x = 0; x < 112; x++) rgb[y * 112 + x] = y < 56 ? (x < 56 ? 0xFF0000 : 0x00FF00) : (x < 56 ? 0x0000FF : 0xFFFFFF);
    }
    float[] views = new ViewPreprocessor(SPEC).preprocess(new DecodedImage(112, 112, rgb));
    int[][] expected = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
    for (int t = 0; t < 4; t++) {
      for (int c = 0; c < 3; c++) assertEquals(norm(expected[t][c], c), at(views, 1 + t, c, 20, 20), 1e-5, "tile " + t);
    }
  }
}
