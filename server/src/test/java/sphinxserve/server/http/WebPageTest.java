package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import sphinxserve.server.testing.TestNode;

/**
 * The chat page's files as a real node serves them (Netty on loopback), and what the page's own files promise: a
 * strict content security policy (no inline script, no framing), no MIME sniffing, an API-key field that no form can
 * submit into a URL. ChatPageBrowserTest drives the key field in a browser.
 */
class WebPageTest {

  @Test
  void everyPageFile_isServedWithTheStrictPolicyAndNoSniffing() throws Exception {
    try (TestNode node = TestNode.start(); HttpClient http = HttpClient.newHttpClient()) {
      for (String path : new String[] {"/", "/index.html", "/app.js", "/outputs.js", "/style.css"}) {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.node().httpPort() + path)).build(),
            HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), path);
        String csp = r.headers().firstValue("content-security-policy").orElse("");
        assertTrue(csp.contains("frame-ancestors 'none'"), path + ": " + csp);
        assertTrue(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), path + ": " + csp);
        assertFalse(csp.contains("unsafe-inline") || csp.contains("unsafe-eval"), path + ": " + csp);
        assertEquals(java.util.List.of("nosniff"), r.headers().allValues("x-content-type-options"), path);
        assertEquals("DENY", r.headers().firstValue("x-frame-options").orElse(""), path);
        assertEquals("no-referrer", r.headers().firstValue("referrer-policy").orElse(""), path);
      }
    }
  }

  /** The policy forbids inline script; the page must not need any, or it would break under its own policy. */
  @Test
  void indexHtml_hasNoInlineScriptOrHandlers() {
    String html = new String(WebPage.file("/index.html"), StandardCharsets.UTF_8);
    Matcher script = Pattern.compile("<script\\b([^>]*)>(.*?)</script>", Pattern.DOTALL).matcher(html);
    int numScripts = 0;
    while (script.find()) {
      numScripts++;
      assertTrue(script.group(1).contains("src=\"/"), "a script without src: " + script.group());
      assertTrue(script.group(2).isBlank(), "inline script: " + script.group());
    }
    assertTrue(numScripts > 0);
    assertFalse(Pattern.compile("\\son[a-z]+\\s*=", Pattern.CASE_INSENSITIVE).matcher(html).find(), "an inline event handler");
    assertFalse(html.contains("javascript:") || html.contains("<style") || html.contains(" style="), "inline script or style");
  }

  /** The key field is a password field outside every form: no submit can put the key into a URL's query. */
  @Test
  void indexHtml_apiKeyFieldIsAPasswordFieldOutsideAnyForm() {
    String html = new String(WebPage.file("/index.html"), StandardCharsets.UTF_8);
    Matcher field = Pattern.compile("<input id=\"api-key\"[^>]*>").matcher(html);
    assertTrue(field.find(), "no API-key field");
    assertTrue(field.group().contains("type=\"password\"") && field.group().contains("autocomplete=\"off\""), field.group());
    assertFalse(field.group().contains("name="), "a named field would be submitted: " + field.group());
    int at = field.start();
    Matcher forms = Pattern.compile("<form\\b.*?</form>", Pattern.DOTALL).matcher(html);
    while (forms.find()) assertFalse(forms.start() < at && at < forms.end(), "the key field sits inside a form");
    String app = new String(WebPage.file("/app.js"), StandardCharsets.UTF_8);
    assertTrue(app.contains("sessionStorage") && !app.contains("localStorage"), "the key is kept in sessionStorage only");
    assertTrue(app.contains("authorization: `Bearer ${key}`"), "the key is sent as a bearer header");
  }
}
