package sphinxserve.server.image;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import sphinxserve.runtime.bundle.SafeTensors;

/**
 * The global view SPHINX computes, {@code F.interpolate(image448, (224, 224), mode="bicubic")}, against PyTorch's
 * own output ({@code tools/sphinx_export/views_fixture.py}: docs/examples/scene.png through SPHINX's host transform,
 * then F.interpolate in float32, and in float16 as SPHINX runs it).
 */
class TorchBicubicTest {

  private static final int N = 448;
  private static final int S = 224;

  @Test
  void equalsPyTorchsBicubicAndDiffersFromPillows() throws IOException {
    SafeTensors fixture;
    try (InputStream in = TorchBicubicTest.class.getResourceAsStream("/views/torch-bicubic.safetensors")) {
      fixture = SafeTensors.parse(in.readAllBytes(), "torch-bicubic.safetensors");
    }
    float[] image = fixture.get("image448").floats();
    float[] expected = fixture.get("global224").floats();
    float[] halfPrecision = fixture.get("global224_fp16").floats();
    float[] torch = resize(new TorchBicubic(N, S), image);
    float[] pillow = resize(new Resampler(N, S), image);

    assertTrue(maxDiff(torch, expected) < 1e-5, "against F.interpolate in float32: " + maxDiff(torch, expected));
    // SPHINX runs it in float16: our float32 result is within float16's rounding of that.
    assertTrue(maxDiff(torch, halfPrecision) < 2e-2, "against float16: " + maxDiff(torch, halfPrecision));
    // The recipes are not interchangeable: Pillow's antialiased kernel gives visibly other values.
    assertTrue(maxDiff(pillow, expected) > 0.05, "Pillow's bicubic should differ: " + maxDiff(pillow, expected));
  }

  private static float[] resize(PlaneResize resize, float[] image) {
    float[] out = new float[3 * S * S];
    float[] plane = new float[S * S];
    for (int c = 0; c < 3; c++) {
      resize.resizePlane(Arrays.copyOfRange(image, c * N * N, (c + 1) * N * N), plane);
      System.arraycopy(plane, 0, out, c * S * S, S * S);
    }
    return out;
  }

  private static double maxDiff(float[] a, float[] b) {
    double max = 0;
    for (int i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
    return max;
  }
}
