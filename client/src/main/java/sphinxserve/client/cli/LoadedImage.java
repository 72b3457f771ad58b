package sphinxserve.client.cli;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import sphinxserve.client.Image;

/**
 * An image file read for the CLI: the bytes to send and the decoded pixels (for its size and for annotating).
 *
 * @param path    where it was read from
 * @param image   the bytes, as sent to the node
 * @param decoded the pixels
 */
record LoadedImage(Path path, Image image, BufferedImage decoded) {
  /**
   * Reads and decodes an image file.
   *
   * @throws UserError if the file is missing, unreadable, or not an image ImageIO decodes
   */
  static LoadedImage read(Path path) {
    if (!Files.exists(path)) {
      throw new UserError("image file not found: " + path);
    }
    if (!Files.isRegularFile(path) || !Files.isReadable(path)) {
      throw new UserError("not a readable file: " + path);
    }
    byte[] bytes;
    BufferedImage decoded;
    try {
      bytes = Files.readAllBytes(path);
      decoded = ImageIO.read(new ByteArrayInputStream(bytes));
    } catch (IOException e) {
      throw new UserError("cannot read " + path + ": " + e.getMessage());
    }
    if (decoded == null) {
      throw new UserError(path + " is not an image this tool can read (JPEG, PNG, GIF or BMP)");
    }
    return new LoadedImage(path, Image.of(bytes), decoded);
  }
}
