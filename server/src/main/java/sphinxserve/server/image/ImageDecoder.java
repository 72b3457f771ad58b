package sphinxserve.server.image;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Iterator;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;

/**
 * Decodes JPEG, PNG, WebP (TwelveMonkeys) and the other formats ImageIO reads into display-oriented RGB.
 *
 * <p>How: limits are checked before any pixel is decoded. The encoded size first; then an {@link ImageReader}
 * reads only the header ({@code getWidth(0)}, {@code getHeight(0)}), and the declared size must meet the
 * pixel and side limits: a 100-kilobyte PNG declaring 100,000 × 100,000 pixels is refused without allocating
 * its raster. Alpha is dropped, as Pillow's {@code convert("RGB")} does (SPHINX's loader); the EXIF
 * orientation ({@link ExifOrientation}) is applied last. Only the first frame of an animated image is read.
 * Thread-safe: every call uses its own reader.
 */
final class ImageDecoder {

  static {
    ImageIO.setUseCache(false); // decode in memory; never spill to temporary files
    ImageIO.scanForPlugins();
  }

  private final ImageLimits limits;

  ImageDecoder(ImageLimits limits) {
    this.limits = limits;
  }

  /** The display-oriented pixels of {@code bytes}; an {@link ImageRejectedException} when refused. */
  DecodedImage decode(byte[] bytes) {
    checkBytes(bytes.length, limits);
    try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
      Iterator<ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
      if (readers == null || !readers.hasNext()) {
        throw new ImageRejectedException(ImageRejectedException.Kind.INVALID, "not an image in a format this node reads (JPEG, PNG, WebP, GIF, BMP)");
      }
      ImageReader reader = readers.next();
      try {
        reader.setInput(in, true, true);
        int width = reader.getWidth(0);
        int height = reader.getHeight(0);
        checkSize(width, height);
        BufferedImage image = reader.read(0, reader.getDefaultReadParam());
        if (image.getWidth() != width || image.getHeight() != height) {
          throw new ImageRejectedException(ImageRejectedException.Kind.INVALID, "decoded size differs from the declared size");
        }
        int[] rgb = image.getRGB(0, 0, width, height, null, 0, width);
        for (int i = 0; i < rgb.length; i++) rgb[i] &= 0xFFFFFF;
        return ExifOrientation.apply(rgb, width, height, ExifOrientation.read(bytes));
      } finally {
        reader.dispose();
      }
    } catch (IOException | RuntimeException e) {
      if (e instanceof ImageRejectedException rejected) throw rejected;
      throw new ImageRejectedException(ImageRejectedException.Kind.INVALID, "cannot be decoded: " + e.getMessage(), e);
    }
  }

  /** Refuses more than {@code limits.maxImageBytes()} encoded bytes, or none. */
  static void checkBytes(int numBytes, ImageLimits limits) {
    if (numBytes == 0) throw new ImageRejectedException(ImageRejectedException.Kind.INVALID, "empty");
    if (numBytes > limits.maxImageBytes()) {
      throw new ImageRejectedException(ImageRejectedException.Kind.TOO_LARGE,
          numBytes + " bytes exceed the limit of " + limits.maxImageBytes() + " bytes (max_image_bytes)");
    }
  }

  private void checkSize(int width, int height) {
    if (width < 1 || height < 1) {
      throw new ImageRejectedException(ImageRejectedException.Kind.INVALID, "declares " + width + " × " + height + " pixels");
    }
    if ((long) width * height > limits.maxImagePixels()) {
      throw new ImageRejectedException(ImageRejectedException.Kind.TOO_LARGE, "declares " + width + " × " + height + " = "
          + (long) width * height + " pixels, over the limit of " + limits.maxImagePixels() + " pixels (max_image_pixels)");
    }
    if (Math.max(width, height) > limits.maxImageSide()) {
      throw new ImageRejectedException(ImageRejectedException.Kind.TOO_LARGE, "declares " + width + " × " + height
          + " pixels, a side over the limit of " + limits.maxImageSide() + " pixels (max_image_side)");
    }
  }
}
