package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

class RowMathTest {

  private static final RowMath SCALAR = ScalarRowMath.INSTANCE;
  private static final RowMath VECTOR = VectorRowMath.INSTANCE;

  @Test
  void allBelowInfinity_findsNanAndPositiveInfinityAnywhere_andAcceptsNegativeInfinity() {
    Random random = new Random(6);
    for (RowMath math : new RowMath[] {SCALAR, VECTOR}) {
      for (int n : new int[] {1, 7, 64, 1000, 1003}) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = i % 5 == 0 ? Float.NEGATIVE_INFINITY : (float) random.nextGaussian() * 1e30f;
        org.junit.jupiter.api.Assertions.assertTrue(math.allBelowInfinity(x, n), math + " n=" + n);
        for (int at : new int[] {0, n / 2, n - 1}) {
          for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
            float[] y = x.clone();
            y[at] = bad;
            org.junit.jupiter.api.Assertions.assertFalse(math.allBelowInfinity(y, n), math + " n=" + n + " " + bad + " at " + at);
            org.junit.jupiter.api.Assertions.assertTrue(math.allBelowInfinity(y, at), "only [0, n) is read");
          }
        }
      }
    }
  }

  @Test
  void vector_randomRowsWithMaskedTokens_agreesWithScalar() {
    Random random = new Random(5);
    for (int trial = 0; trial < 100; trial++) {
      int n = 1 + random.nextInt(3000);
      float[] x = new float[n];
      for (int i = 0; i < n; i++) {
        x[i] = random.nextInt(10) == 0 ? Float.NEGATIVE_INFINITY : (float) random.nextGaussian() * 4;
      }
      x[random.nextInt(n)] = 3f;
      float max = SCALAR.max(x, n);
      assertEquals(max, VECTOR.max(x, n));
      assertEquals(SCALAR.indexOf(x, n, 3f), VECTOR.indexOf(x, n, 3f));
      assertEquals(SCALAR.indexOf(x, n, max), VECTOR.indexOf(x, n, max));
      assertEquals(-1, VECTOR.indexOf(x, n, 1e9f));

      float scale = 1f / (0.1f + random.nextFloat());
      float[] ws = new float[n];
      float[] wv = new float[n];
      float zs = SCALAR.expShiftSum(x, ws, n, max, scale);
      float zv = VECTOR.expShiftSum(x, wv, n, max, scale);
      assertEquals(zs, zv, 1e-5f * zs);
      for (int i = 0; i < n; i++) assertEquals(ws[i], wv[i], 2e-7f * Math.max(1f, ws[i]), "w[" + i + "]");
      assertEquals(SCALAR.sumAtLeast(ws, n, 0.05f), VECTOR.sumAtLeast(ws, n, 0.05f), 1e-5f * zs);

      int numBlocks = (n + RowMath.BLOCK - 1) / RowMath.BLOCK;
      float[] sumsScalar = new float[numBlocks];
      float[] sumsVector = new float[numBlocks];
      assertEquals(numBlocks, SCALAR.blockSums(ws, n, sumsScalar));
      assertEquals(numBlocks, VECTOR.blockSums(ws, n, sumsVector));
      for (int b = 0; b < numBlocks; b++) assertEquals(sumsScalar[b], sumsVector[b], 1e-5f * zs, "block " + b);

      float[] zeroedScalar = ws.clone();
      float[] zeroedVector = ws.clone();
      SCALAR.zeroBelow(zeroedScalar, n, 0.05f);
      VECTOR.zeroBelow(zeroedVector, n, 0.05f);
      for (int i = 0; i < n; i++) {
        assertEquals(ws[i] < 0.05f ? 0f : ws[i], zeroedScalar[i], "w[" + i + "]");
        assertEquals(zeroedScalar[i], zeroedVector[i], "w[" + i + "]");
      }

      int[] bucketsScalar = new int[n];
      int[] bucketsVector = new int[n];
      SCALAR.buckets(ws, n, 20, 1000, bucketsScalar);
      VECTOR.buckets(ws, n, 20, 1000, bucketsVector);
      for (int i = 0; i < n; i++) {
        assertEquals(Math.min(Float.floatToRawIntBits(ws[i]) >>> 20, 1000), bucketsScalar[i], "bucket " + i);
        assertEquals(bucketsScalar[i], bucketsVector[i], "bucket " + i);
      }
      int value = bucketsScalar[random.nextInt(n)];
      int[] idsScalar = new int[n];
      int[] idsVector = new int[n];
      int count = SCALAR.indicesOf(bucketsScalar, n, value, idsScalar);
      assertEquals(count, VECTOR.indicesOf(bucketsScalar, n, value, idsVector));
      assertEquals(java.util.stream.IntStream.range(0, n).filter(i -> bucketsScalar[i] == value).boxed().toList(),
          java.util.Arrays.stream(idsVector, 0, count).boxed().toList());
    }
  }

  @Test
  void expShiftSum_maskedToken_getsZeroWeight() {
    float[] x = new float[40];
    x[7] = Float.NEGATIVE_INFINITY;
    float[] w = new float[40];
    assertEquals(39f, VECTOR.expShiftSum(x, w, 40, 0f, 1f));
    assertEquals(0f, w[7]);
  }
}
