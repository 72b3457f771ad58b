package sphinxserve.runtime.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.runtime.onnx.TensorProto.DataType.FLOAT;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.engine.Sessions;
import sphinxserve.runtime.testing.Numerics;

/**
 * The block quantizer writes exactly the layout ONNX Runtime's MatMulNBits reads (checked through the real
 * kernel against a Java dequantization), and its error stays within what the bit width allows.
 */
class WeightQuantizationTest {

  @Test
  void fourBitCodesArePackedLowNibbleFirstAlongKPerOutputColumn() {
    int k = 32;
    int n = 2;
    float[] w = new float[k * n]; // [k, n]: column 0 counts -8..7 twice (scale 0.5), column 1 is zero
    for (int row = 0; row < k; row++) w[row * n] = (row % 16 - 8) * 0.5f;
    WeightQuantization.Packed p = new WeightQuantization(4, 16, 0, 4).quantize(w, k, n);
    assertEquals(2, p.blocks());
    assertEquals(8, p.blob());
    // Column 0, block 0: codes 0..15 (value -4 is the extreme: scale = -4 / -8 = 0.5, zero point 8).
    assertArrayEquals(new byte[] {0x10, 0x32, 0x54, 0x76, (byte) 0x98, (byte) 0xba, (byte) 0xdc, (byte) 0xfe},
        java.util.Arrays.copyOfRange(p.data(), 0, 8));
    assertArrayEquals(new float[] {0.5f, 0.5f, 0f, 0f}, p.scales());
    // Column 1 is all zeros: code 8 in both nibbles.
    for (int i = 16; i < 32; i++) assertEquals((byte) 0x88, p.data()[i]);
  }

  @Test
  void eightBitCodesAreOneByteEachOffsetBy128() {
    float[] w = new float[16];
    for (int i = 0; i < 16; i++) w[i] = i == 3 ? 2.54f : 0.02f * i;
    WeightQuantization.Packed p = new WeightQuantization(8, 16, 0, 8).quantize(w, 16, 1);
    assertEquals(2.54f / -128, p.scales()[0], 1e-9);
    assertEquals(0, p.data()[3]); // the extreme maps to the lowest code, -128 + 128
    assertEquals(128 - 1, p.data()[1] & 0xff); // 0.02 / (-0.0198) rounds to -1
    assertEquals(128, p.data()[0] & 0xff);
  }

  @Test
  void badSettingsAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> new WeightQuantization(3, 32, 0, 0));
    assertThrows(IllegalArgumentException.class, () -> new WeightQuantization(4, 24, 0, 0));
    assertThrows(IllegalArgumentException.class, () -> new WeightQuantization(4, 8, 0, 0));
    assertThrows(IllegalArgumentException.class, () -> WeightQuantization.named("int2"));
    assertEquals(WeightQuantization.NONE, WeightQuantization.named("none"));
  }

  /**
   * One MatMulNBits node through ONNX Runtime equals x · dequantize(w) (accuracy level 0: float32 compute)
   * and stays near x · w; K = 72 leaves a partial last block for block 32.
   */
  @ParameterizedTest
  @CsvSource({"4, 32, 0.12", "4, 16, 0.10", "8, 32, 0.01", "8, 64, 0.01"})
  void runtimeKernelReadsTheLayout(int bits, int blockSize, double maxErrorAgainstFloat) throws OrtException {
    int m = 3;
    int k = 72;
    int n = 40;
    SplittableRandom random = new SplittableRandom(bits * 100L + blockSize);
    float[] x = new float[m * k];
    float[] w = new float[k * n];
    for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
    for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() / Math.sqrt(k));
    WeightQuantization q = new WeightQuantization(bits, blockSize, 0, bits);

    GraphBuilder g = new GraphBuilder("one_matmul_nbits");
    String in = g.input("x", FLOAT, "M", k);
    g.output(g.matMulNBits(in, "w", w, k, n, q), "y", FLOAT, "M", n);
    byte[] model = g.build("test", Map.of()).toByteArray();
    float[] actual = new float[m * n];
    OrtEnvironment env = sphinxserve.runtime.engine.OrtEnvironments.get();
    try (OrtSession session = Sessions.open(env, "matmulnbits", RuntimeOptions.cpu(), model);
        OnnxTensor input = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {m, k});
        OrtSession.Result result = session.run(Map.of("x", input))) {
      ((OnnxTensor) result.get(0)).getFloatBuffer().get(actual);
    }

    float[] dequantized = dequantize(q.quantize(w, k, n), bits, blockSize, k, n);
    double kernelError = Numerics.relativeError(actual, matMul(x, dequantized, m, k, n));
    assertTrue(kernelError < 1e-5, "kernel vs Java dequantization: " + kernelError);
    double quantizationError = Numerics.relativeError(actual, matMul(x, w, m, k, n));
    assertTrue(quantizationError < maxErrorAgainstFloat, "int" + bits + " vs float32: " + quantizationError);
  }

  /** {@code [k, n]} from the packed {@code [n, blocks, blob]} codes: (code − 2^(bits−1)) · scale. */
  private static float[] dequantize(WeightQuantization.Packed p, int bits, int blockSize, int k, int n) {
    float[] w = new float[k * n];
    int half = 1 << (bits - 1);
    for (int col = 0; col < n; col++) {
      for (int row = 0; row < k; row++) {
        int block = row / blockSize;
        int i = row % blockSize;
        int at = (col * p.blocks() + block) * p.blob();
        int code = bits == 8 ? p.data()[at + i] & 0xff : (p.data()[at + i / 2] >> (4 * (i % 2))) & 0xf;
        w[row * n + col] = (code - half) * p.scales()[col * p.blocks() + block];
      }
    }
    return w;
  }

  private static float[] matMul(float[] x, float[] w, int m, int k, int n) {
    float[] y = new float[m * n];
    for (int r = 0; r < m; r++) {
      for (int c = 0; c < n; c++) {
        double s = 0;
        for (int i = 0; i < k; i++) s += (double) x[r * k + i] * w[i * n + c];
        y[r * n + c] = (float) s;
      }
    }
    return y;
  }
}
