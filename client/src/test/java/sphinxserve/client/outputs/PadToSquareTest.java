package sphinxserve.client.outputs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class PadToSquareTest {
  private static final double EPS = 1e-9;

  @Test
  void toPixels_wideImageIsPaddedTopAndBottom() {
    PadToSquare pad = PadToSquare.of(400, 200);
    assertEquals(400, pad.side());
    assertEquals(0, pad.offsetX());
    assertEquals(100, pad.offsetY());
    PixelBox box = pad.toPixels(new Box(0.25, 0.25, 0.75, 0.75));
    assertEquals(new PixelBox(100, 0, 300, 200), box);
  }

  @Test
  void toPixels_tallImageIsPaddedLeftAndRight() {
    PadToSquare pad = PadToSquare.of(300, 600);
    assertEquals(150, pad.offsetX());
    PixelPoint p = pad.toPixels(new Point(0.5, 0.5));
    assertEquals(150, p.x(), EPS);
    assertEquals(300, p.y(), EPS);
  }

  @Test
  void toPixels_oddPaddingUsesIntegerOffsetLikeExpand2Square() {
    PadToSquare pad = PadToSquare.of(101, 100);
    assertEquals(0, pad.offsetY());
    assertEquals(0.0, pad.pixelY(0.0), EPS);
  }

  @Test
  void toPixels_clampsIntoTheImage() {
    PadToSquare pad = PadToSquare.of(400, 200);
    assertEquals(new PixelBox(0, 0, 400, 200), pad.toPixels(new Box(0, 0, 1, 1)));
  }

  @Test
  void toNormalised_invertsToPixels() {
    PadToSquare pad = PadToSquare.of(640, 480);
    Box box = new Box(0.1, 0.2, 0.6, 0.7);
    Box back = pad.toNormalised(pad.toPixels(box));
    assertEquals(box.x1(), back.x1(), EPS);
    assertEquals(box.y1(), back.y1(), EPS);
    assertEquals(box.x2(), back.x2(), EPS);
    assertEquals(box.y2(), back.y2(), EPS);
  }

  @Test
  void of_rejectsEmptyImages() {
    assertThrows(IllegalArgumentException.class, () -> PadToSquare.of(0, 10));
  }
}
