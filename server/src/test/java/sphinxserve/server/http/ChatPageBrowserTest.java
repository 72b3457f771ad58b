package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;
import sphinxserve.client.outputs.PadToSquare;
import sphinxserve.client.outputs.ParsedAnswer;
import sphinxserve.client.outputs.PixelBox;
import sphinxserve.client.outputs.Region;
import sphinxserve.client.outputs.SphinxOutputs;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;

/**
 * The chat page in a real browser (Debian's headless Chromium through chromedriver) against a real node serving the
 * embedded SPHINX-tiny: upload docs/examples/scene.png, ask the detection question by its chip, wait for the stream
 * to end, and check that the answer appeared and that a box was drawn where the client library's parser puts each
 * region (in the image's own pixels). Without Chromium the test is skipped naming the install command, unless
 * {@code SPHINX_REQUIRE_CHROMIUM=1} (set by .ci/run) makes that a failure. It saves a screenshot to
 * {@code target/chat-page.png} (docs/examples/chat-page.png is one).
 */
class ChatPageBrowserTest {

  static final String INSTALL = "apt-get install -y chromium chromium-driver";
  private static final String QUESTION = "Detect all people.";

  @Test
  void detectionQuestion_streamsTheAnswerAndDrawsItsBoxes(@TempDir Path tmp) throws Exception {
    Path chromium = firstExisting("/usr/bin/chromium", "/usr/bin/chromium-browser").orElse(null);
    Path driver = firstExisting("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver").orElse(null);
    if (chromium == null || driver == null) {
      String message = "Chromium or chromedriver missing; install them with: " + INSTALL;
      if ("1".equals(System.getenv("SPHINX_REQUIRE_CHROMIUM"))) fail(message);
      Assumptions.abort(message);
    }
    NodeConfig config = NodeConfig.parse(new String[] {"--bundle=embedded:sphinx-tiny", "--bundle-cache=" + tmp.resolve("bundles"),
        "--port=0", "--http-port=0", "--metrics-port=0", "--kv-blocks=512", "--drain-seconds=1", "--ort-threads=1"}, Map.of());
    Path scene = Path.of("../docs/examples/scene.png").toAbsolutePath().normalize();
    var decoded = ImageIO.read(scene.toFile());
    try (SphinxNode node = SphinxNode.open(config, EngineBackend::new)) {
      ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driver.toFile()).usingAnyFreePort().build();
      ChromeOptions options = new ChromeOptions().setBinary(chromium.toFile())
          .addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860");
      WebDriver browser = new ChromeDriver(service, options);
      try {
        browser.get("http://127.0.0.1:" + node.httpPort() + "/");
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));
        wait.until(b -> !b.findElement(By.id("model")).getText().isEmpty());
        browser.findElement(By.id("file")).sendKeys(scene.toString());
        wait.until(b -> b.findElement(By.id("stage")).isDisplayed());
        WebElement chip = browser.findElements(By.cssSelector("#chips button")).stream()
            .filter(b -> b.getText().equals(QUESTION)).findFirst().orElseThrow();
        chip.click();
        new WebDriverWait(browser, Duration.ofSeconds(120)).until(b -> {
          String status = b.findElement(By.id("status")).getText();
          return status.equals("done") || status.startsWith("error");
        });
        assertEquals("done", browser.findElement(By.id("status")).getText());
        List<WebElement> bubbles = browser.findElements(By.cssSelector("#conversation li.assistant"));
        String answer = bubbles.getLast().getText();
        assertFalse(answer.isBlank(), "the answer appeared");

        ParsedAnswer parsed = SphinxOutputs.parse(answer);
        PadToSquare pad = PadToSquare.of(decoded.getWidth(), decoded.getHeight());
        List<PixelBox> expected = new ArrayList<>();
        for (Region r : parsed.regions()) expected.add(pad.toPixels(r.box()));
        assertFalse(expected.isEmpty(), "the detection answer has boxes: " + answer);
        List<WebElement> rects = browser.findElements(By.cssSelector("#overlay rect"));
        assertEquals(expected.size(), rects.size(), "one box drawn per region of: " + answer);
        for (int i = 0; i < rects.size(); i++) {
          WebElement rect = rects.get(i);
          PixelBox box = expected.get(i);
          assertClose(box.x1(), rect.getAttribute("x"), "x of box " + i);
          assertClose(box.y1(), rect.getAttribute("y"), "y of box " + i);
          assertClose(box.x2() - box.x1(), rect.getAttribute("width"), "width of box " + i);
          assertClose(box.y2() - box.y1(), rect.getAttribute("height"), "height of box " + i);
        }
        Path shot = ((ChromeDriver) browser).getScreenshotAs(OutputType.FILE).toPath();
        Path target = Path.of("target/chat-page.png");
        Files.createDirectories(target.getParent());
        Files.copy(shot, target, StandardCopyOption.REPLACE_EXISTING);
        assertTrue(Files.size(target) > 0);
      } finally {
        browser.quit();
      }
    }
  }

  /**
   * On a node with {@code --tenants} the page first says it needs a key; once typed in the key field it lists the
   * model and streams an answer, the key kept in the tab's sessionStorage and never in the page's URL.
   */
  @Test
  void tenantNode_keyFieldUnlocksThePage_andTheKeyStaysOutOfTheUrl(@TempDir Path tmp) throws Exception {
    Path chromium = firstExisting("/usr/bin/chromium", "/usr/bin/chromium-browser").orElse(null);
    Path driver = firstExisting("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver").orElse(null);
    if (chromium == null || driver == null) {
      String message = "Chromium or chromedriver missing; install them with: " + INSTALL;
      if ("1".equals(System.getenv("SPHINX_REQUIRE_CHROMIUM"))) fail(message);
      Assumptions.abort(message);
    }
    String key = "page-test-key-0123456789";
    Path tenants = Files.writeString(tmp.resolve("tenants.properties"),
        "page.key-sha256=" + sphinxserve.server.auth.Tenants.sha256(key) + "\npage.methods=*\n");
    sphinxserve.runtime.bundle.Bundle bundle = sphinxserve.runtime.testing.TestBundles.get(sphinxserve.runtime.bundle.BundlePreset.TEST);
    NodeConfig config = NodeConfig.parse(new String[] {"--bundle=" + bundle.directory(), "--tenants=" + tenants,
        "--port=0", "--http-port=0", "--metrics-port=0", "--kv-blocks=256", "--drain-seconds=1", "--ort-threads=1"}, Map.of());
    try (SphinxNode node = SphinxNode.open(config, EngineBackend::new)) {
      ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driver.toFile()).usingAnyFreePort().build();
      ChromeOptions options = new ChromeOptions().setBinary(chromium.toFile())
          .addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860");
      WebDriver browser = new ChromeDriver(service, options);
      try {
        String page = "http://127.0.0.1:" + node.httpPort() + "/";
        browser.get(page);
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));
        wait.until(b -> b.findElement(By.id("status")).getText().contains("needs an API key"));
        WebElement field = browser.findElement(By.id("api-key"));
        field.sendKeys(key);
        field.sendKeys(org.openqa.selenium.Keys.TAB); // the change event stores it and lists the model again
        wait.until(b -> !b.findElement(By.id("model")).getText().isEmpty());
        browser.findElement(By.id("question")).sendKeys("Hello?");
        browser.findElement(By.id("send")).click();
        new WebDriverWait(browser, Duration.ofSeconds(120)).until(b -> {
          String status = b.findElement(By.id("status")).getText();
          return status.equals("done") || status.startsWith("error");
        });
        assertEquals("done", browser.findElement(By.id("status")).getText());
        assertEquals(page, browser.getCurrentUrl(), "the URL changed");
        var js = (org.openqa.selenium.JavascriptExecutor) browser;
        assertEquals(key, js.executeScript("return sessionStorage.getItem('sphinx-serve.api-key')"));
        assertEquals(0L, js.executeScript("return localStorage.length"));
        browser.navigate().refresh(); // the tab keeps it: the page works again without retyping
        wait.until(b -> !b.findElement(By.id("model")).getText().isEmpty());
        assertEquals(key, browser.findElement(By.id("api-key")).getDomProperty("value"));
      } finally {
        browser.quit();
      }
    }
  }

  private static void assertClose(double expected, String actual, String what) {
    assertTrue(Math.abs(expected - Double.parseDouble(actual)) < 0.5, what + ": expected " + expected + ", drawn " + actual);
  }

  private static Optional<Path> firstExisting(String... paths) {
    for (String p : paths) {
      if (Files.isExecutable(Path.of(p))) return Optional.of(Path.of(p));
    }
    return Optional.empty();
  }
}
