package sphinxserve.server.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufInputStream;
import io.netty.buffer.Unpooled;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import sphinxserve.server.generate.RequestException;

/** Request bodies are read with every string measured before it is made: over-long ones are refused by name. */
class BoundedJsonBodyTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int MAX_TEXT = 65_536;
  private static final int MAX_IMAGE = 10 << 20;

  @Test
  void ordinaryBody_readsAsJacksonWould() throws Exception {
    String body = """
        {"model": "m", "n": 2, "temperature": 0.7, "big": 123456789012345678901234567890, "stream": true, "user": null,
         "messages": [{"role": "user", "content": [{"type": "text", "text": "caf\\u00e9 \\"quoted\\""},
           {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
         "stop": ["\\n", "END"], "logit_bias": {"42": -100}}""";
    assertEquals(JSON.readTree(body), read(body));
  }

  @Test
  void overLongText_isRefusedNamingItsField() throws Exception {
    RequestException e = assertThrows(RequestException.class,
        () -> read(chat("{\"type\": \"text\", \"text\": \"" + "a".repeat(MAX_TEXT + 1) + "\"}")));
    assertTrue(e.getMessage().startsWith("messages[0].content[0].text: "), e.getMessage());
    assertTrue(e.getMessage().contains("65,537 characters") && e.getMessage().contains("(max-prompt-chars)"), e.getMessage());
    RequestException stop = assertThrows(RequestException.class,
        () -> read("{\"stop\": [\"x\", \"" + "b".repeat(MAX_TEXT + 1) + "\"]}"));
    assertTrue(stop.getMessage().startsWith("stop[1]: "), stop.getMessage());
    assertEquals(JSON.createObjectNode().put("prompt", "c".repeat(MAX_TEXT)), read("{\"prompt\": \"" + "c".repeat(MAX_TEXT) + "\"}"),
        "exactly the limit passes");
  }

  /** Base64 of the image limit, with room for MIME line breaks (2.6 %) and the prefix; 5 % more is refused. */
  @Test
  void imageDataUrls_mayBeAsLongAsTheImageLimitEncodes() throws Exception {
    String image = "data:image/png;base64," + "A".repeat(4 * (MAX_IMAGE / 3));
    JsonNode body = read(chat("{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + image + "\"}}"));
    assertEquals(image.length(), body.at("/messages/0/content/0/image_url/url").asText().length());
    RequestException e = assertThrows(RequestException.class,
        () -> read(chat("{\"type\": \"image_url\", \"image_url\": \"" + image + "A".repeat(image.length() / 20) + "\"}")));
    assertTrue(e.getMessage().startsWith("messages[0].content[0].image_url: "), e.getMessage());
    assertTrue(e.getMessage().contains("(max-image-bytes)"), e.getMessage());
  }

  @Test
  void otherStrings_mayBeAsLongAsTheValidatorsAllow_andOnlyImagePathsGetTheImageLimit() throws Exception {
    String grammar = "g".repeat(BoundedJsonBody.MIN_OTHER_CHARS);
    assertEquals(grammar, BoundedJsonBody.read(JSON, Unpooled.wrappedBuffer(("{\"guided_grammar\": \"" + grammar + "\"}")
        .getBytes(StandardCharsets.UTF_8)), 1000, MAX_IMAGE).path("guided_grammar").asText(), "a grammar is not message text");
    RequestException text = assertThrows(RequestException.class, () -> BoundedJsonBody.read(JSON,
        Unpooled.wrappedBuffer(chat("{\"type\": \"text\", \"text\": \"" + "t".repeat(1001) + "\"}").getBytes(StandardCharsets.UTF_8)), 1000, MAX_IMAGE));
    assertTrue(text.getMessage().startsWith("messages[0].content[0].text: "), text.getMessage());
    RequestException elsewhere = assertThrows(RequestException.class,
        () -> read("{\"metadata\": {\"url\": \"" + "A".repeat(BoundedJsonBody.MIN_OTHER_CHARS + 1) + "\"}}"));
    assertTrue(elsewhere.getMessage().startsWith("metadata.url: "), "a url outside a message is no image: " + elsewhere.getMessage());
  }

  @Test
  void hugeKeys_areNotRepeatedBackInFull() {
    StringBuilder body = new StringBuilder();
    String key = "k".repeat(40_000);
    for (int i = 0; i < 20; i++) body.append("{\"").append(key).append("\": ");
    body.append('"').append("v".repeat(BoundedJsonBody.MIN_OTHER_CHARS + 1)).append('"');
    body.append("}".repeat(20));
    RequestException e = assertThrows(RequestException.class, () -> read(body.toString()));
    assertTrue(e.getMessage().length() < 400, "the refusal names a cut path: " + e.getMessage().length() + " chars");
  }

  /**
   * The point of it: a 16 MiB body of one string is refused from its parsed segments (at most 64 K characters each,
   * never humongous) without the 32 MB contiguous copy: measured 34 MB against 67 MB. Allocation counts (not
   * timings) of the same parse, plain and bounded, on this thread.
   */
  @Test
  void maximumBody_isRefusedWithoutBuildingItsString() throws Exception {
    byte[] body = chat("{\"type\": \"text\", \"text\": \"" + "w".repeat((16 << 20) - 200) + "\"}").getBytes(StandardCharsets.UTF_8);
    com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    for (int warm = 0; warm < 2; warm++) JSON.readTree(new ByteBufInputStream(Unpooled.wrappedBuffer(body)));
    long before = threads.getCurrentThreadAllocatedBytes();
    JSON.readTree(new ByteBufInputStream(Unpooled.wrappedBuffer(body)));
    long plain = threads.getCurrentThreadAllocatedBytes() - before;
    before = threads.getCurrentThreadAllocatedBytes();
    assertThrows(RequestException.class, () -> BoundedJsonBody.read(JSON, Unpooled.wrappedBuffer(body), MAX_TEXT, MAX_IMAGE));
    long bounded = threads.getCurrentThreadAllocatedBytes() - before;
    assertTrue(bounded < plain * 0.6, "bounded parse allocated " + bounded + " bytes, the plain one " + plain);
  }

  private static String chat(String part) {
    return "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": [" + part + "]}]}";
  }

  private static JsonNode read(String body) throws Exception {
    ByteBuf content = Unpooled.wrappedBuffer(body.getBytes(StandardCharsets.UTF_8));
    return BoundedJsonBody.read(JSON, content, MAX_TEXT, MAX_IMAGE);
  }
}
