package sphinxserve.server.testing;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import java.util.zip.CRC32;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;

/** Encoded test images made in memory: noise, PNG/JPEG encodings, EXIF orientation, forged headers. */
public final class TestImages {

  private TestImages() {}

  /** A {@code width × height} RGB image of seeded noise (a distinct image, and digest, per seed). */
  public static BufferedImage noise(int width, int height, long seed) {
    Random random = new Random(seed);
    BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < height; y++) {
      for (int x = 0; x < width; x++) image.setRGB(x, y, random.nextInt(1 << 24));
    }
    return image;
  }

  /** PNG bytes of {@code image}. */
  public static byte[] png(BufferedImage image) {
    return write(image, "png");
  }

  /** Baseline JPEG bytes of {@code image} at quality 0.95. */
  public static byte[] jpeg(BufferedImage image) {
    ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (var ios = ImageIO.createImageOutputStream(out)) {
      writer.setOutput(ios);
      ImageWriteParam param = writer.getDefaultWriteParam();
      param.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
      param.setCompressionQuality(0.95f);
      writer.write(null, new IIOImage(image, null, null), param);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      writer.dispose();
    }
    return out.toByteArray();
  }

  private static byte[] write(BufferedImage image, String format) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      if (!ImageIO.write(image, format, out)) throw new IllegalStateException("no writer for " + format);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  /** A TIFF (EXIF) block holding one IFD0 entry: orientation {@code value}, big-endian. */
  static byte[] exifTiff(int orientation) {
    ByteBuffer b = ByteBuffer.allocate(8 + 2 + 12 + 4);
    b.put((byte) 'M').put((byte) 'M').putShort((short) 42).putInt(8); // header, IFD0 at 8
    b.putShort((short) 1); // one entry
    b.putShort((short) 0x0112).putShort((short) 3).putInt(1).putShort((short) orientation).putShort((short) 0);
    b.putInt(0); // no next IFD
    return b.array();
  }

  /** {@code jpeg} with an APP1 Exif segment declaring {@code orientation}, inserted right after SOI. */
  public static byte[] withExifOrientation(byte[] jpeg, int orientation) {
    byte[] tiff = exifTiff(orientation);
    byte[] header = "Exif\0\0".getBytes(StandardCharsets.ISO_8859_1);
    int length = 2 + header.length + tiff.length;
    ByteBuffer out = ByteBuffer.allocate(jpeg.length + 2 + length);
    out.put(jpeg, 0, 2); // SOI
    out.put((byte) 0xFF).put((byte) 0xE1).putShort((short) length).put(header).put(tiff);
    out.put(jpeg, 2, jpeg.length - 2);
    return out.array();
  }

  /** {@code png} with an {@code eXIf} chunk declaring {@code orientation}, inserted after IHDR. */
  public static byte[] pngWithExifOrientation(byte[] png, int orientation) {
    int afterIhdr = 8 + 4 + 4 + 13 + 4;
    byte[] chunk = chunk("eXIf", exifTiff(orientation));
    ByteBuffer out = ByteBuffer.allocate(png.length + chunk.length);
    out.put(png, 0, afterIhdr).put(chunk).put(png, afterIhdr, png.length - afterIhdr);
    return out.array();
  }

  /**
   * A small, well-formed PNG whose header declares {@code width × height} RGB pixels (a decompression bomb's
   * shape: a decoder that trusts it allocates {@code 3 × width × height} bytes).
   */
  public static byte[] pngDeclaring(int width, int height) {
    ByteBuffer ihdr = ByteBuffer.allocate(13).putInt(width).putInt(height).put((byte) 8).put((byte) 2)
        .put((byte) 0).put((byte) 0).put((byte) 0);
    byte[] idat = {0x78, (byte) 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}; // an empty zlib stream
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
    out.writeBytes(chunk("IHDR", ihdr.array()));
    out.writeBytes(chunk("IDAT", idat));
    out.writeBytes(chunk("IEND", new byte[0]));
    return out.toByteArray();
  }

  private static byte[] chunk(String type, byte[] data) {
    byte[] t = type.getBytes(StandardCharsets.ISO_8859_1);
    CRC32 crc = new CRC32();
    crc.update(t);
    crc.update(data);
    return ByteBuffer.allocate(12 + data.length).putInt(data.length).put(t).put(data).putInt((int) crc.getValue()).array();
  }
}
