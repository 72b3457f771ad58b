package sphinxserve.api;

/**
 * How the global view is made from the normalised {@code imageSize} square: the recipe is part of the model,
 * since a vision encoder is trained (or was exported) with one of them and sees the other as a slightly
 * different image.
 */
public enum GlobalViewResize {
  /** Pillow's bicubic (Keys a = −0.5, antialiased when downsampling): what the project's own models train with. */
  PILLOW_BICUBIC,
  /**
   * PyTorch's {@code F.interpolate(mode="bicubic", align_corners=False)} (Keys a = −0.75, no antialiasing, borders
   * replicated): what SPHINX computes inside its model from the 448 image.
   */
  TORCH_BICUBIC
}
