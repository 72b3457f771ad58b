package sphinxserve.server.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import sphinxserve.server.testing.TestImages;

final class ImageDecoderTest {

  private static final ImageDecoder DECODER = new ImageDecoder(new ImageLimits(1 << 20, 1_000_000, 4096));

  /** Display image: 64 × 32, quadrants TL red, TR green, BL blue, BR white. */
  private static final int W = 64;
  private static final int H = 32;

  private static int display(int x, int y) {
    return y < H / 2 ? (x < W / 2 ? 0xFF0000 : 0x00FF00) : (x < W / 2 ? 0x0000FF : 0xFFFFFF);
  }

  /**
   * The stored image a camera writes with {@code orientation}, from the EXIF 2.3 table's definition of
   * where the stored 0th row and 0th column lie in the display image (not from the decoder's transforms).
   */
  private static BufferedImage stored(int orientation) {
    // {row 0 side, column 0 side}: T(op), B(ottom), L(eft), R(ight).
    String[] sides = {"", "TL", "TR", "BR", "BL", "LT", "RT", "RB", "LB"};
    char rowSide = sides[orientation].charAt(0);
    char colSide = sides[orientation].charAt(1);
    boolean swap = orientation >= 5;
    int sw = swap ? H : W;
    int sh = swap ? W : H;
    BufferedImage image = new BufferedImage(sw, sh, BufferedImage.TYPE_INT_RGB);
    for (int r = 0; r < sh; r++) {
      for (int c = 0; c < sw; c++) {
        int x = 0;
        int y = 0;
        switch (rowSide) {
          case 'T' -> y = r;
          case 'B' -> y = H - 1 - r;
          case 'L' -> x = r;
          default -> x = W - 1 - r;
        }
        switch (colSide) {
          case 'L' -> x = c;
          case 'R' -> x = W - 1 - c;
          case 'T' -> y = c;
          default -> y = H - 1 - c;
        }
        image.setRGB(c, r, display(x, y));
      }
    }
    return image;
  }

  private static void assertDisplay(DecodedImage decoded, String what) {
    assertEquals(W, decoded.width(), what + " width");
    assertEquals(H, decoded.height(), what + " height");
    int[][] probes = {{8, 8}, {W - 8, 8}, {8, H - 8}, {W - 8, H - 8}};
    for (int[] p : probes) {
      int expected = display(p[0], p[1]);
      int actual = decoded.rgb()[p[1] * W + p[0]];
      for (int shift = 0; shift <= 16; shift += 8) {
        assertEquals(expected >> shift & 0xFF, actual >> shift & 0xFF, 12, what + " at " + p[0] + "," + p[1]); // JPEG is lossy
      }
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 3, 4, 5, 6, 7, 8})
  void decode_jpegWithExifOrientation_returnsDisplayOrientation(int orientation) {
    byte[] jpeg = TestImages.withExifOrientation(TestImages.jpeg(stored(orientation)), orientation);
    assertEquals(orientation, ExifOrientation.read(jpeg));
    assertDisplay(DECODER.decode(jpeg), "orientation " + orientation);
  }

  @ParameterizedTest
  @ValueSource(ints = {3, 6, 8})
  void decode_pngWithExifChunk_returnsDisplayOrientation(int orientation) {
    byte[] png = TestImages.pngWithExifOrientation(TestImages.png(stored(orientation)), orientation);
    assertEquals(orientation, ExifOrientation.read(png));
    assertDisplay(DECODER.decode(png), "png orientation " + orientation);
  }

  @Test
  void decode_declaredPixelsOverLimit_refusedBeforeDecoding() {
    var e = assertThrows(ImageRejectedException.class, () -> DECODER.decode(TestImages.pngDeclaring(100_000, 100_000)));
    assertEquals(ImageRejectedException.Kind.TOO_LARGE, e.kind());
    assertTrue(e.getMessage().startsWith("image: declares 100000 × 100000"), e.getMessage());
    assertTrue(e.getMessage().contains("limit of 1000000 pixels (max_image_pixels)"), e.getMessage());
  }

  @Test
  void decode_sideOverLimit_refused() {
    var e = assertThrows(ImageRejectedException.class, () -> DECODER.decode(TestImages.pngDeclaring(5000, 10)));
    assertEquals(ImageRejectedException.Kind.TOO_LARGE, e.kind());
    assertTrue(e.getMessage().contains("max_image_side"), e.getMessage());
  }

  @Test
  void decode_garbage_invalid() {
    var e = assertThrows(ImageRejectedException.class, () -> DECODER.decode(new byte[] {1, 2, 3, 4, 5}));
    assertEquals(ImageRejectedException.Kind.INVALID, e.kind());
    assertTrue(e.getMessage().startsWith("image: not an image"), e.getMessage());
  }

  @Test
  void decode_truncatedPng_invalid() {
    byte[] png = TestImages.png(TestImages.noise(50, 50, 1));
    byte[] truncated = java.util.Arrays.copyOf(png, png.length / 2);
    var e = assertThrows(ImageRejectedException.class, () -> DECODER.decode(truncated));
    assertEquals(ImageRejectedException.Kind.INVALID, e.kind());
    assertTrue(e.getMessage().startsWith("image: cannot be decoded"), e.getMessage());
  }

  @Test
  void decode_tooManyBytes_refusedNamingLimit() {
    var e = assertThrows(ImageRejectedException.class, () -> DECODER.decode(new byte[(1 << 20) + 1]));
    assertEquals(ImageRejectedException.Kind.TOO_LARGE, e.kind());
    assertEquals("image: 1048577 bytes exceed the limit of 1048576 bytes (max_image_bytes)", e.getMessage());
  }

  @Test
  void read_malformedExif_defaultsToOne() {
    byte[] jpeg = TestImages.jpeg(stored(1));
    byte[] bad = TestImages.withExifOrientation(jpeg, 6);
    bad[2 + 4 + 6] = 'X'; // break the TIFF byte-order mark
    assertEquals(1, ExifOrientation.read(bad));
    assertEquals(1, ExifOrientation.read(TestImages.withExifOrientation(jpeg, 9)));
  }
}
