package sphinxserve.client.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.client.ScriptedSphinxServer;
import sphinxserve.client.ScriptedSphinxServer.Reply;
import sphinxserve.client.TestImages;

/** The CLI, run in-process against a real grpc-java server on loopback ({@link ScriptedSphinxServer}). */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class MainTest {
  @RegisterExtension
  final ScriptedSphinxServer node = new ScriptedSphinxServer();

  @TempDir
  Path dir;

  private record Run(int code, String out, String err) {}

  private static Run run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  private Path image(int width, int height) throws IOException {
    Path file = dir.resolve("photo-" + width + "x" + height + ".png");
    Files.write(file, TestImages.png(width, height));
    return file;
  }

  @Test
  void ask_streamsTheAnswerAndListsRegionsInPixels() throws IOException {
    node.script(Reply.answer("There are two people[0.10,0.25,0.30,0.75;", "0.50,0.25,0.70,0.75] here."));
    Run r = run("ask", "-t", node.target(), "--image", image(400, 200).toString(), "Detect", "all", "people");
    assertEquals(0, r.code(), r.err());
    assertEquals("There are two people[0.10,0.25,0.30,0.75;0.50,0.25,0.70,0.75] here.\n", r.out());
    assertTrue(r.err().contains("people           [40, 0, 120, 200]"), r.err());
    assertTrue(r.err().contains("people           [200, 0, 280, 200]"), r.err());
    assertEquals("Detect all people", node.received().getFirst().request().getMessages(0).getContent(1).getText());
  }

  @Test
  void ask_annotateDrawsBoxesKeypointsAndSkeleton() throws IOException {
    node.script(Reply.answer("A person[0.10,0.10,0.90,0.90]: nose[0.65,0.26], left eye[0.66,0.25], ",
        "left shoulder[0.70,0.32], left hip[0.67,0.46]"));
    Path photo = image(400, 400);
    Path out = dir.resolve("out.png");
    Run r = run("ask", "-t", node.target(), "--image", photo.toString(), "--annotate", out.toString(), "Pose?");
    assertEquals(0, r.code(), r.err());
    BufferedImage original = ImageIO.read(photo.toFile());
    BufferedImage drawn = ImageIO.read(out.toFile());
    assertEquals(400, drawn.getWidth());
    assertEquals(400, drawn.getHeight());
    assertNotEquals(original.getRGB(260, 104), drawn.getRGB(260, 104), "nose dot");
    assertNotEquals(original.getRGB(200, 360), drawn.getRGB(200, 360), "box bottom edge");
    assertNotEquals(original.getRGB(274, 156), drawn.getRGB(274, 156), "shoulder-hip limb");
    assertEquals(original.getRGB(20, 20), drawn.getRGB(20, 20), "untouched corner");
    assertTrue(r.err().contains("annotated image written to"), r.err());
  }

  @Test
  void ask_jsonSchemaFile_sendsItAsTheConstraint() throws IOException {
    Path schema = Files.writeString(dir.resolve("person.json"), "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}}}");
    Run r = run("ask", "-t", node.target(), "--json-schema", schema.toString(), "Who?");
    assertEquals(0, r.code(), r.err());
    var constraint = node.received().getFirst().request().getSampling().getConstraint();
    assertEquals(Files.readString(schema), constraint.getJsonSchema());
  }

  @Test
  void ask_groundedAndChoice_sendTheirConstraints() throws IOException {
    assertEquals(0, run("ask", "-t", node.target(), "--grounded", "Where?").code());
    assertTrue(node.received().getLast().request().getSampling().getConstraint().getGrounded());
    assertEquals(0, run("ask", "-t", node.target(), "--choice", "yes|no", "--choice", "maybe", "Is it?").code());
    assertEquals(java.util.List.of("yes", "no", "maybe"), node.received().getLast().request().getSampling().getConstraint().getChoice().getValuesList());
  }

  @Test
  void ask_twoConstraints_isAUsageError() {
    Run r = run("ask", "-t", node.target(), "--json", "--regex", "[0-9]+", "hi");
    assertEquals(2, r.code(), r.err());
    assertTrue(r.err().contains("choose one of --json-schema"), r.err());
    assertEquals(0, node.received().size());
  }

  @Test
  void ask_missingImageFileIsAUsageError() {
    Run r = run("ask", "-t", node.target(), "--image", dir.resolve("nope.jpg").toString(), "hi");
    assertEquals(2, r.code());
    assertTrue(r.err().startsWith("error: image file not found: "), r.err());
    assertEquals(0, node.received().size());
  }

  @Test
  void ask_notAnImageIsAUsageError() throws IOException {
    Path text = Files.writeString(dir.resolve("notes.jpg"), "not really a jpeg");
    Run r = run("ask", "-t", node.target(), "--image", text.toString(), "hi");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("is not an image this tool can read"), r.err());
  }

  @Test
  void ask_unreachableNodeSaysSo() throws IOException {
    String dead = ScriptedSphinxServer.deadTarget();
    Run r = run("ask", "-t", dead, "--deadline", "10", "--image", image(20, 20).toString(), "hi");
    assertEquals(1, r.code());
    assertTrue(r.err().startsWith("error: cannot reach a sphinx-serve node at " + dead), r.err());
    assertTrue(r.err().contains("--target"), r.err());
  }

  @Test
  void ask_nodeRejectionIsExplained() throws IOException {
    node.script(Reply.fail(Status.Code.INVALID_ARGUMENT));
    Run r = run("ask", "-t", node.target(), "--image", image(20, 20).toString(), "hi");
    assertEquals(1, r.code());
    assertTrue(r.err().startsWith("error: the node rejected the request: scripted INVALID_ARGUMENT"), r.err());
  }

  @Test
  void ask_withImageAffinity_reachesTheNodeThroughTheRing() throws IOException {
    Run r = run("ask", "-t", node.target(), "--image-affinity", "--image", image(40, 20).toString(), "hi");
    assertEquals(0, r.code(), r.err());
    assertFalse(node.received().getFirst().imageDigestHeader().isEmpty());
  }

  @Test
  void ask_imageAffinityOverATargetThatIsNotHostPort_isAUsageError() throws IOException {
    Run r = run("ask", "-t", node.target(), "-t", "dns:///nodes:50051", "--image-affinity", "--image",
        image(20, 20).toString(), "hi");
    assertEquals(2, r.code(), r.err());
  }

  @Test
  void putImage_printsDigestAndSize() throws IOException {
    Run r = run("put-image", "-t", node.target(), image(30, 20).toString());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("size   30x20"), r.out());
    assertTrue(r.out().matches("(?s)digest [0-9a-f]{64}\n.*"), r.out());
  }

  @Test
  void info_printsTheModel() {
    Run r = run("info", "-t", node.target());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("bundle_id: \"scripted\""), r.out());
  }

  @Test
  void health_exitCodeSaysWhetherAllServe() throws IOException {
    Run ok = run("health", "-t", node.target());
    assertEquals(0, ok.code(), ok.err());
    assertEquals(node.target() + " SERVING\n", ok.out());

    String dead = ScriptedSphinxServer.deadTarget();
    Run bad = run("health", "-t", node.target(), "-t", dead);
    assertEquals(1, bad.code());
    assertTrue(bad.out().contains(dead + " UNREACHABLE (cannot connect to " + dead), bad.out());
  }

  @Test
  void noArguments_printsUsage() {
    Run r = run("ask");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("Missing required"), r.err());
  }
}
