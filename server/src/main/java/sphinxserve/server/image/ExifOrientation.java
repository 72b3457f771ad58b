package sphinxserve.server.image;

/**
 * Reads the EXIF orientation tag (0x0112) from JPEG (APP1 "Exif") and PNG ({@code eXIf} chunk) bytes and
 * turns stored pixels into display orientation.
 *
 * <p>How: a JPEG is a run of marker segments ({@code FF xx}, then a big-endian length that counts itself);
 * the scan stops at start-of-scan, so entropy-coded data is never read. The Exif payload is a TIFF file:
 * byte order ({@code II}/{@code MM}), 42, the offset of IFD0, then 12-byte entries of tag, type, count and
 * value; orientation is a SHORT stored in the entry itself. Every offset is bounds-checked: a malformed
 * header yields orientation 1, never an exception. The transforms follow the EXIF 2.3 table (value 6: the
 * stored image must be rotated 90° clockwise to display), the same as Pillow's {@code exif_transpose}.
 * WebP's EXIF chunk is not read (such images are shown as stored).
 */
final class ExifOrientation {

  /** The orientation tag's id in IFD0. */
  private static final int TAG_ORIENTATION = 0x0112;

  /** TIFF type SHORT. */
  private static final int TYPE_SHORT = 3;

  private ExifOrientation() {}

  /** The orientation (1–8) {@code bytes} declare; 1 when absent, unreadable or out of range. */
  static int read(byte[] bytes) {
    if (bytes.length > 3 && u8(bytes, 0) == 0xFF && u8(bytes, 1) == 0xD8) return readJpeg(bytes);
    if (bytes.length > 8 && u8(bytes, 0) == 0x89 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G') return readPng(bytes);
    return 1;
  }

  private static int readJpeg(byte[] b) {
    int pos = 2;
    while (pos + 4 <= b.length) {
      if (u8(b, pos) != 0xFF) return 1;
      int marker = u8(b, pos + 1);
      if (marker == 0xFF) { // fill byte
        pos++;
        continue;
      }
      if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) { // standalone markers
        pos += 2;
        continue;
      }
      if (marker == 0xDA || marker == 0xD9) return 1; // start of scan / end of image: no EXIF before pixels
      int length = u16(b, pos + 2, false);
      if (length < 2) return 1;
      int payload = pos + 4;
      if (marker == 0xE1 && length >= 8 && payload + 6 <= b.length && b[payload] == 'E' && b[payload + 1] == 'x'
          && b[payload + 2] == 'i' && b[payload + 3] == 'f' && b[payload + 4] == 0 && b[payload + 5] == 0) {
        return readTiff(b, payload + 6, Math.min(b.length, pos + 2 + length));
      }
      pos += 2 + length;
    }
    return 1;
  }

  private static int readPng(byte[] b) {
    int pos = 8;
    while (pos + 8 <= b.length) {
      long length = u32(b, pos, false);
      if (length < 0 || pos + 12 + length > b.length) return 1;
      int data = pos + 8;
      if (b[pos + 4] == 'e' && b[pos + 5] == 'X' && b[pos + 6] == 'I' && b[pos + 7] == 'f') {
        return readTiff(b, data, data + (int) length);
      }
      if (b[pos + 4] == 'I' && b[pos + 5] == 'E' && b[pos + 6] == 'N' && b[pos + 7] == 'D') return 1;
      pos = data + (int) length + 4; // data, then CRC
    }
    return 1;
  }

  /** Orientation from the TIFF structure in {@code b[start, end)}. */
  private static int readTiff(byte[] b, int start, int end) {
    if (start + 8 > end) return 1;
    boolean little;
    if (b[start] == 'I' && b[start + 1] == 'I') little = true;
    else if (b[start] == 'M' && b[start + 1] == 'M') little = false;
    else return 1;
    if (u16(b, start + 2, little) != 42) return 1;
    long ifd = u32(b, start + 4, little);
    if (ifd < 8 || start + ifd + 2 > end) return 1;
    int entries = start + (int) ifd + 2;
    int count = u16(b, start + (int) ifd, little);
    for (int i = 0; i < count && entries + 12 * (i + 1) <= end; i++) {
      int entry = entries + 12 * i;
      if (u16(b, entry, little) == TAG_ORIENTATION) {
        if (u16(b, entry + 2, little) != TYPE_SHORT) return 1;
        int value = u16(b, entry + 8, little);
        return value >= 1 && value <= 8 ? value : 1;
      }
    }
    return 1;
  }

  /**
   * The display image for pixels stored as {@code rgb} ({@code width × height}) with {@code orientation}.
   * Orientations 5–8 swap width and height.
   */
  static DecodedImage apply(int[] rgb, int width, int height, int orientation) {
    if (orientation <= 1 || orientation > 8) return new DecodedImage(width, height, rgb);
    boolean swap = orientation >= 5;
    int outW = swap ? height : width;
    int outH = swap ? width : height;
    int[] out = new int[rgb.length];
    for (int y = 0; y < outH; y++) {
      for (int x = 0; x < outW; x++) {
        // (sx, sy): the stored pixel shown at display (x, y).
        int sx;
        int sy;
        switch (orientation) {
          case 2 -> { sx = width - 1 - x; sy = y; }               // mirror left-right
          case 3 -> { sx = width - 1 - x; sy = height - 1 - y; }  // rotate 180°
          case 4 -> { sx = x; sy = height - 1 - y; }              // mirror top-bottom
          case 5 -> { sx = y; sy = x; }                           // transpose
          case 6 -> { sx = y; sy = height - 1 - x; }              // rotate 90° clockwise
          case 7 -> { sx = width - 1 - y; sy = height - 1 - x; }  // transverse
          default -> { sx = width - 1 - y; sy = x; }              // 8: rotate 90° counter-clockwise
        }
        out[y * outW + x] = rgb[sy * width + sx];
      }
    }
    return new DecodedImage(outW, outH, out);
  }

  private static int u8(byte[] b, int i) {
    return b[i] & 0xFF;
  }

  private static int u16(byte[] b, int i, boolean little) {
    if (i + 2 > b.length) return -1;
    return little ? u8(b, i) | u8(b, i + 1) << 8 : u8(b, i) << 8 | u8(b, i + 1);
  }

  private static long u32(byte[] b, int i, boolean little) {
    if (i + 4 > b.length) return -1;
    long v = little
        ? (long) u8(b, i) | (long) u8(b, i + 1) << 8 | (long) u8(b, i + 2) << 16 | (long) u8(b, i + 3) << 24
        : (long) u8(b, i) << 24 | (long) u8(b, i + 1) << 16 | (long) u8(b, i + 2) << 8 | u8(b, i + 3);
    return v;
  }
}
