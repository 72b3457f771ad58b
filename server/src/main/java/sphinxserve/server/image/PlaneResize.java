package sphinxserve.server.image;

/** Resizes one square plane of floats: how the global view is made ({@link sphinxserve.api.GlobalViewResize}). */
interface PlaneResize {

  /** {@code src[in × in]} resized into {@code dst[out × out]}, no rounding. */
  void resizePlane(float[] src, float[] dst);
}
