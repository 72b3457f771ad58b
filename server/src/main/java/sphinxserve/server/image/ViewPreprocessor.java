package sphinxserve.server.image;

import sphinxserve.api.VisionSpec;

/**
 * Turns a decoded image into the vision encoder's input: SPHINX's views, {@code [numViews, 3, S, S]} floats.
 *
 * <p>How, following SPHINX (LLaMA2-Accessory's {@code expand2square} + {@code Resize} + views):
 * <pre>
 *   w × h ──pad──▶ M × M (M = max(w, h); image at (⌊(M−w)/2⌋, ⌊(M−h)/2⌋), the rest padRgb)
 *         ──bicubic, 8-bit──▶ N × N (N = imageSize, 448) ──normalise──▶ (v/255 − mean) / std
 *         ──▶ view 0: the N image bicubic-downsampled to S (= viewSize, 224)
 *             views 1..g²: the g × g tiles of side S, row-major (TL, TR, BL, BR for g = 2)
 * </pre>
 * Padding is centred, as {@code expand2square} pastes the image at {@code (M − side) // 2}: a client maps
 * a box coordinate back to pixels with {@code value × M − offset}, offset being that floor. The padded square
 * is never materialised: the horizontal pass reads the pad colour for columns outside the image, and rows
 * outside it are constant pad colour (the weights sum to 1), so memory is {@code h × N}, not {@code M²}.
 *
 * <p>The first resize is Pillow's bicubic ({@link Resampler}: Keys a = −0.5, antialiased when downsampling) on
 * 8-bit values, rounding after each pass as Pillow does on an RGB image (within one level of Pillow's fixed-point
 * arithmetic), as SPHINX's host transform. The global view is resized from the normalised floats without
 * rounding, by the bundle's recipe ({@link sphinxserve.api.GlobalViewResize}): Pillow's bicubic again (the
 * project's own models train so), or PyTorch's {@code F.interpolate} bicubic ({@link TorchBicubic}: a = −0.75, no
 * antialiasing), which is what SPHINX computes inside its model (in float16 there; here in float32).
 */
final class ViewPreprocessor {

  private final VisionSpec spec;
  private final int n;
  private final int s;
  private final int[] pad;
  private final float[] mean;
  private final float[] std;
  private final PlaneResize global;

  ViewPreprocessor(VisionSpec spec) {
    this.spec = spec;
    this.n = spec.imageSize();
    this.s = spec.viewSize();
    this.pad = spec.padRgb();
    this.mean = spec.mean();
    this.std = spec.std();
    this.global = switch (spec.globalViewResize()) {
      case PILLOW_BICUBIC -> new Resampler(n, s);
      case TORCH_BICUBIC -> new TorchBicubic(n, s);
    };
  }

  /** Floats the encoder takes for one image: {@code numViews × 3 × S × S}. */
  int floatsPerImage() {
    return spec.numViews() * 3 * s * s;
  }

  /** The views of {@code image}, NCHW, global view first. */
  float[] preprocess(DecodedImage image) {
    float[][] planes = normalised(resizePadded(image));
    float[] out = new float[floatsPerImage()];
    int plane = s * s;
    float[] view = new float[plane];
    for (int c = 0; c < 3; c++) {
      global.resizePlane(planes[c], view);
      System.arraycopy(view, 0, out, c * plane, plane);
    }
    int grid = spec.grid();
    for (int r = 0; r < grid; r++) {
      for (int col = 0; col < grid; col++) {
        int v = 1 + r * grid + col;
        for (int c = 0; c < 3; c++) {
          int dst = (v * 3 + c) * plane;
          for (int y = 0; y < s; y++) {
            System.arraycopy(planes[c], (r * s + y) * n + col * s, out, dst + y * s, s);
          }
        }
      }
    }
    return out;
  }

  /** The padded image resized to N × N, interleaved RGB 0–255. */
  int[] resizePadded(DecodedImage image) {
    int w = image.width();
    int h = image.height();
    int m = Math.max(w, h);
    int ox = (m - w) / 2;
    int oy = (m - h) / 2;
    Resampler r = new Resampler(m, n);
    int[] rgb = image.rgb();

    // Horizontal pass over the image's own rows: N × h, rounded to 8 bits as Pillow does between passes.
    byte[] tmp = new byte[h * n * 3];
    for (int y = 0; y < h; y++) {
      int row = y * w;
      for (int x = 0; x < n; x++) {
        double cr = 0;
        double cg = 0;
        double cb = 0;
        int base = x * r.maxTaps;
        for (int k = 0, taps = r.numTaps[x]; k < taps; k++) {
          int sx = r.first[x] + k - ox;
          double wk = r.weights[base + k];
          if (sx >= 0 && sx < w) {
            int p = rgb[row + sx];
            cr += wk * (p >>> 16 & 0xFF);
            cg += wk * (p >>> 8 & 0xFF);
            cb += wk * (p & 0xFF);
          } else {
            cr += wk * pad[0];
            cg += wk * pad[1];
            cb += wk * pad[2];
          }
        }
        int t = (y * n + x) * 3;
        tmp[t] = (byte) clamp8(cr);
        tmp[t + 1] = (byte) clamp8(cg);
        tmp[t + 2] = (byte) clamp8(cb);
      }
    }

    // Vertical pass: rows outside the image are the pad colour.
    int[] out = new int[n * n * 3];
    for (int y = 0; y < n; y++) {
      int base = y * r.maxTaps;
      for (int x = 0; x < n; x++) {
        double cr = 0;
        double cg = 0;
        double cb = 0;
        for (int k = 0, taps = r.numTaps[y]; k < taps; k++) {
          int sy = r.first[y] + k - oy;
          double wk = r.weights[base + k];
          if (sy >= 0 && sy < h) {
            int t = (sy * n + x) * 3;
            cr += wk * (tmp[t] & 0xFF);
            cg += wk * (tmp[t + 1] & 0xFF);
            cb += wk * (tmp[t + 2] & 0xFF);
          } else {
            cr += wk * pad[0];
            cg += wk * pad[1];
            cb += wk * pad[2];
          }
        }
        int o = (y * n + x) * 3;
        out[o] = clamp8(cr);
        out[o + 1] = clamp8(cg);
        out[o + 2] = clamp8(cb);
      }
    }
    return out;
  }

  private float[][] normalised(int[] rgb) {
    float[][] planes = new float[3][n * n];
    for (int c = 0; c < 3; c++) {
      float[] p = planes[c];
      for (int i = 0; i < n * n; i++) p[i] = (rgb[i * 3 + c] / 255f - mean[c]) / std[c];
    }
    return planes;
  }

  /** Rounds half up and clamps to 0–255, as Pillow's 8-bit resampling does. */
  private static int clamp8(double v) {
    int i = (int) Math.floor(v + 0.5);
    return i < 0 ? 0 : Math.min(i, 255);
  }
}
