package sphinxserve.server.image;

/**
 * Decoded pixels in display orientation (EXIF applied), alpha dropped.
 *
 * @param width pixels per row
 * @param height rows
 * @param rgb {@code 0xRRGGBB} per pixel, row-major
 */
record DecodedImage(int width, int height, int[] rgb) {

  DecodedImage {
    if ((long) width * height != rgb.length) {
      throw new IllegalArgumentException(rgb.length + " pixels for " + width + " × " + height);
    }
  }
}
