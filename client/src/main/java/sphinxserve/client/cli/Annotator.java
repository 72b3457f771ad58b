package sphinxserve.client.cli;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Line2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import sphinxserve.client.outputs.CocoKeypoint;
import sphinxserve.client.outputs.PadToSquare;
import sphinxserve.client.outputs.ParsedAnswer;
import sphinxserve.client.outputs.PixelBox;
import sphinxserve.client.outputs.PixelPoint;
import sphinxserve.client.outputs.Point;
import sphinxserve.client.outputs.Region;

/**
 * Draws an answer's regions (labelled boxes) and keypoints (dots joined by the COCO skeleton) onto a copy of the
 * original image, with java.awt in headless mode. Coordinates go through {@link PadToSquare}; line widths and text
 * scale with the image.
 */
final class Annotator {
  /** Box and label colours, chosen by label so one label keeps one colour. */
  private static final Color[] PALETTE = {
      new Color(230, 25, 75), new Color(60, 180, 75), new Color(0, 130, 200), new Color(245, 130, 48),
      new Color(145, 30, 180), new Color(70, 240, 240), new Color(240, 50, 230), new Color(210, 245, 60)};
  private static final Color SKELETON = new Color(255, 215, 0);
  private static final Color JOINT = new Color(255, 60, 60);

  private Annotator() {}

  /** A copy of {@code image} with the answer drawn on it. */
  static BufferedImage draw(BufferedImage image, ParsedAnswer answer) {
    int w = image.getWidth();
    int h = image.getHeight();
    PadToSquare pad = PadToSquare.of(w, h);
    BufferedImage out = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = out.createGraphics();
    try {
      g.drawImage(image, 0, 0, null);
      g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
      g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
      float line = Math.max(2f, Math.min(w, h) / 200f);
      g.setStroke(new BasicStroke(line));
      g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, Math.max(10, Math.round(Math.min(w, h) / 40f))));
      for (Region r : answer.regions()) {
        drawRegion(g, pad.toPixels(r.box()), r.label(), colour(r.label()));
      }
      for (Map<CocoKeypoint, Point> pose : answer.poses()) {
        drawPose(g, pad, pose, line);
      }
    } finally {
      g.dispose();
    }
    return out;
  }

  /** Draws and writes the result; the format follows the file's extension (PNG when unknown). */
  static void drawTo(BufferedImage image, ParsedAnswer answer, Path target) throws IOException {
    String name = target.getFileName().toString().toLowerCase(Locale.ROOT);
    String format = name.endsWith(".jpg") || name.endsWith(".jpeg") ? "jpg" : name.endsWith(".bmp") ? "bmp" : "png";
    if (!ImageIO.write(draw(image, answer), format, target.toFile())) {
      throw new IOException("no ImageIO writer for " + format);
    }
  }

  private static void drawRegion(Graphics2D g, PixelBox b, String label, Color colour) {
    g.setColor(colour);
    g.draw(new Rectangle2D.Double(b.x1(), b.y1(), b.x2() - b.x1(), b.y2() - b.y1()));
    if (label.isEmpty()) {
      return;
    }
    FontMetrics fm = g.getFontMetrics();
    int tw = fm.stringWidth(label) + 6;
    int th = fm.getHeight();
    double ty = b.y1() - th >= 0 ? b.y1() - th : b.y1();
    g.fill(new Rectangle2D.Double(b.x1(), ty, tw, th));
    g.setColor(Color.WHITE);
    g.drawString(label, (float) b.x1() + 3, (float) ty + fm.getAscent());
  }

  private static void drawPose(Graphics2D g, PadToSquare pad, Map<CocoKeypoint, Point> pose, float line) {
    g.setColor(SKELETON);
    for (CocoKeypoint.Limb limb : CocoKeypoint.SKELETON) {
      Point a = pose.get(limb.from());
      Point b = pose.get(limb.to());
      if (a != null && b != null) {
        PixelPoint pa = pad.toPixels(a);
        PixelPoint pb = pad.toPixels(b);
        g.draw(new Line2D.Double(pa.x(), pa.y(), pb.x(), pb.y()));
      }
    }
    double r = line * 1.8;
    g.setColor(JOINT);
    for (Point p : pose.values()) {
      PixelPoint pp = pad.toPixels(p);
      g.fill(new Ellipse2D.Double(pp.x() - r, pp.y() - r, 2 * r, 2 * r));
    }
  }

  private static Color colour(String label) {
    return PALETTE[Math.floorMod(label.hashCode(), PALETTE.length)];
  }
}
