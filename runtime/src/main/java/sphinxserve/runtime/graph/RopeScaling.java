package sphinxserve.runtime.graph;

/**
 * How a model stretches RoPE past its training context (Hugging Face's {@code rope_scaling}): the inverse
 * frequencies of the rotary embedding, per pair of head dimensions. The formulas are those of transformers'
 * {@code modeling_rope_utils.py}; each type Hugging Face defines but this class does not is refused when the
 * config is read, never approximated.
 */
public sealed interface RopeScaling {

  /** No scaling: {@code θ^(−2i/D)}. */
  RopeScaling NONE = new None();

  /** {@code D/2} inverse frequencies for head width {@code headDim} and base {@code theta}. */
  double[] inverseFrequencies(int headDim, double theta);

  /** A short description for the manifest and logs. */
  String describe();

  /** The unscaled inverse frequencies {@code θ^(−2i/D)}. */
  static double[] base(int headDim, double theta) {
    double[] inv = new double[headDim / 2];
    for (int i = 0; i < inv.length; i++) inv[i] = Math.pow(theta, -2.0 * i / headDim);
    return inv;
  }

  /** No scaling. */
  record None() implements RopeScaling {
    @Override
    public double[] inverseFrequencies(int headDim, double theta) {
      return base(headDim, theta);
    }

    @Override
    public String describe() {
      return "none";
    }
  }

  /** Position interpolation: every frequency divided by {@code factor} ({@code rope_type: linear}). */
  record Linear(double factor) implements RopeScaling {
    public Linear {
      if (!(factor >= 1)) throw new IllegalArgumentException("linear rope_scaling factor must be >= 1, got " + factor);
    }

    @Override
    public double[] inverseFrequencies(int headDim, double theta) {
      double[] inv = base(headDim, theta);
      for (int i = 0; i < inv.length; i++) inv[i] /= factor;
      return inv;
    }

    @Override
    public String describe() {
      return "linear(factor=" + factor + ")";
    }
  }

  /**
   * LLaMA 3.1's scaling ({@code rope_type: llama3}): wavelengths longer than
   * {@code originalContext / lowFreqFactor} are divided by {@code factor}, those shorter than
   * {@code originalContext / highFreqFactor} kept, and the band between interpolated smoothly.
   */
  record Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalContext) implements RopeScaling {
    public Llama3 {
      if (!(factor >= 1)) throw new IllegalArgumentException("llama3 rope_scaling factor must be >= 1, got " + factor);
      if (!(highFreqFactor > lowFreqFactor) || !(lowFreqFactor > 0)) {
        throw new IllegalArgumentException("llama3 rope_scaling needs high_freq_factor > low_freq_factor > 0, got "
            + highFreqFactor + " and " + lowFreqFactor);
      }
      if (originalContext <= 0) throw new IllegalArgumentException("llama3 rope_scaling original_max_position_embeddings must be positive");
    }

    @Override
    public double[] inverseFrequencies(int headDim, double theta) {
      double[] inv = base(headDim, theta);
      double lowFreqWavelen = originalContext / lowFreqFactor;
      double highFreqWavelen = originalContext / highFreqFactor;
      for (int i = 0; i < inv.length; i++) {
        double wavelen = 2 * Math.PI / inv[i];
        if (wavelen > lowFreqWavelen) {
          inv[i] = inv[i] / factor;
        } else if (wavelen >= highFreqWavelen) { // the medium band, interpolated
          double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
          inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
        }
      }
      return inv;
    }

    @Override
    public String describe() {
      return "llama3(factor=" + factor + ", low_freq_factor=" + lowFreqFactor + ", high_freq_factor=" + highFreqFactor
          + ", original_max_position_embeddings=" + originalContext + ")";
    }
  }
}
