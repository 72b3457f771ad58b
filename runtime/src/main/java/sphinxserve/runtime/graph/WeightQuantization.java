package sphinxserve.runtime.graph;

import java.util.Locale;

/**
 * How a decoder's linear weights are stored: float32 ({@link #NONE}) or block-quantized to 4 or 8 bits for
 * ONNX Runtime's {@code com.microsoft.MatMulNBits} kernel. docs/BUNDLE.md ("Quantized weights") documents the
 * layout and which tensors stay float32, with the measurements behind the choice.
 *
 * <p>Quantization is <b>symmetric per block</b> of {@code blockSize} consecutive input rows of one output
 * column (llama.cpp's Q4_0 / Q8_0 rule): the block's value of largest magnitude {@code m} sets
 * {@code scale = m / -2^(bits-1)}, so {@code m} itself maps exactly to the lowest code and every code of the
 * range is usable; codes are {@code clamp(round(w / scale), -2^(bits-1), 2^(bits-1)-1)} stored offset by
 * {@code 2^(bits-1)}, which is MatMulNBits' default zero point when none is given. No zero-point tensor is
 * stored (less to read per token, and the kernels' symmetric paths are their fastest); the weights the builder
 * quantizes (random normal, or trained projections) are centred on zero, where an asymmetric zero point buys
 * little. Deterministic: the same weights always give the same bytes.
 *
 * @param bits 4 or 8; 0 for float32 weights
 * @param blockSize values per block along K (a power of two, at least 16)
 * @param accuracyLevel MatMulNBits' {@code accuracy_level}: 0 computes in float32, 4 quantizes the
 *     activations to int8 and uses the integer dot-product paths (AVX-512 VNNI / AVX2)
 * @param headBits bits of the output head {@code lm_head} (4 or 8), 0 to keep it float32; the embedding table and
 *     the norms are never quantized
 */
public record WeightQuantization(int bits, int blockSize, int accuracyLevel, int headBits) {

  /** Float32 weights, plain MatMul. */
  public static final WeightQuantization NONE = new WeightQuantization(0, 0, 0, 0);

  /** Accuracy level chosen by measurement (docs/PERFORMANCE.md, "Quantized weights"). */
  public static final int DEFAULT_ACCURACY_LEVEL = 4;

  public WeightQuantization {
    if (bits != 0) {
      if (bits != 4 && bits != 8) throw new IllegalArgumentException("quantization bits must be 4 or 8, got " + bits);
      if (blockSize < 16 || Integer.bitCount(blockSize) != 1) {
        throw new IllegalArgumentException("quantization block size must be a power of two >= 16, got " + blockSize);
      }
      if (headBits != 0 && headBits != 4 && headBits != 8) throw new IllegalArgumentException("head bits must be 0, 4 or 8, got " + headBits);
      if (accuracyLevel < 0 || accuracyLevel > 4) {
        throw new IllegalArgumentException("accuracy level must be 0..4, got " + accuracyLevel);
      }
    } else if (headBits != 0) {
      throw new IllegalArgumentException("a float32 model has a float32 head");
    }
  }

  /**
   * {@code none}, {@code int8} or {@code int4} with the measured defaults: int8 in blocks of 128 with an int8
   * head; int4 in blocks of 32 with an int8 head; accuracy level 4 for both.
   */
  public static WeightQuantization named(String name) {
    return switch (name.toLowerCase(Locale.ROOT)) {
      case "none" -> NONE;
      case "int8" -> new WeightQuantization(8, 128, DEFAULT_ACCURACY_LEVEL, 8);
      case "int4" -> new WeightQuantization(4, 32, DEFAULT_ACCURACY_LEVEL, 8);
      default -> throw new IllegalArgumentException("unknown quantization '" + name + "'; known: int4, int8, none");
    };
  }

  /** Parses a head setting: {@code int4}, {@code int8} or {@code none} (float32) to bits. */
  public static int headBits(String name) {
    return switch (name.toLowerCase(Locale.ROOT)) {
      case "none" -> 0;
      case "int8" -> 8;
      case "int4" -> 4;
      default -> throw new IllegalArgumentException("unknown head quantization '" + name + "'; known: int4, int8, none");
    };
  }

  /** This with another block size. */
  public WeightQuantization withBlockSize(int size) {
    return new WeightQuantization(bits, size, accuracyLevel, headBits);
  }

  /** This with another accuracy level. */
  public WeightQuantization withAccuracyLevel(int level) {
    return new WeightQuantization(bits, blockSize, level, headBits);
  }

  /** This with the output head at {@code bits} (0: float32). */
  public WeightQuantization withHeadBits(int bits) {
    return new WeightQuantization(this.bits, blockSize, accuracyLevel, bits);
  }

  /** How the output head is stored: this quantization at {@link #headBits}, or {@link #NONE}. */
  public WeightQuantization head() {
    return headBits == 0 ? NONE : new WeightQuantization(headBits, blockSize, accuracyLevel, headBits);
  }

  public boolean enabled() {
    return bits != 0;
  }

  /** The manifest's name of the quantized element type: {@code int4}, {@code int8}; {@code float32} when off. */
  public String dtype() {
    return enabled() ? "int" + bits : "float32";
  }

  /**
   * A weight {@code w} stored {@code [k, n]} (row-major, input × output) as MatMulNBits wants it: {@code packed}
   * is {@code [n, ceil(k / blockSize), blockSize · bits / 8]} (transposed: one output column's blocks in a row;
   * 4-bit codes two to a byte, the even k in the low nibble; a last partial block padded with the zero code),
   * {@code scales} is {@code [n · blocks]} in the same order.
   */
  public Packed quantize(float[] w, int k, int n) {
    if (!enabled()) throw new IllegalStateException("float32 weights are not quantized");
    if (w.length != (long) k * n) throw new IllegalArgumentException(w.length + " values for [" + k + ", " + n + "]");
    int blocks = (k + blockSize - 1) / blockSize;
    int blob = blockSize * bits / 8;
    int half = 1 << (bits - 1);
    byte[] packed = new byte[n * blocks * blob];
    float[] scales = new float[n * blocks];
    int[] codes = new int[blockSize];
    for (int col = 0; col < n; col++) {
      for (int b = 0; b < blocks; b++) {
        int start = b * blockSize;
        int end = Math.min(k, start + blockSize);
        float extreme = 0;
        for (int row = start; row < end; row++) {
          float v = w[row * n + col];
          if (Math.abs(v) > Math.abs(extreme)) extreme = v;
        }
        float scale = extreme == 0 ? 0 : extreme / -half;
        float inverse = scale == 0 ? 0 : 1 / scale;
        for (int i = 0; i < blockSize; i++) {
          int row = start + i;
          int q = row < end ? Math.round(w[row * n + col] * inverse) : 0;
          codes[i] = Math.max(-half, Math.min(half - 1, q)) + half;
        }
        scales[col * blocks + b] = scale;
        int at = (col * blocks + b) * blob;
        if (bits == 8) {
          for (int i = 0; i < blockSize; i++) packed[at + i] = (byte) codes[i];
        } else {
          for (int i = 0; i < blob; i++) packed[at + i] = (byte) (codes[2 * i] | codes[2 * i + 1] << 4);
        }
      }
    }
    return new Packed(packed, scales, blocks, blob);
  }

  /**
   * A quantized weight.
   *
   * @param data {@code [n, blocks, blob]} codes
   * @param scales {@code [n · blocks]}
   * @param blocks blocks per output column, {@code ceil(k / blockSize)}
   * @param blob bytes per block
   */
  public record Packed(byte[] data, float[] scales, int blocks, int blob) {}
}
