package sphinxserve.server.http;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonStreamContext;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.util.JsonParserDelegate;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufInputStream;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Deque;
import sphinxserve.server.generate.RequestException;

/**
 * Reads a request body into a JSON tree with every string's length checked before it becomes a Java string.
 *
 * <p>Without this, a body of one 16 MiB string (the body limit allows it) is parsed whole into a 16 M-character
 * {@code char[]}, copied into a 16 MB {@code String} and only then refused by {@code --max-prompt-chars}: ~50 MB
 * of humongous arrays per request, which under a storm of such bodies forced old-generation collections that
 * stalled every stream (docs/OPERATIONS.md). Jackson parses a string token lazily into segments of at most 64 K
 * characters; {@link JsonParser#getTextLength()} counts them without joining, so a string over its limit is refused
 * here, naming its field, before the contiguous copies exist: a 16 MiB body of one string then allocates half as
 * much (BoundedJsonBodyTest: 34 MB against 67 MB), and none of it in arrays large enough to be humongous.
 *
 * <p>Limits: an image's data URL (a value of {@code url} or {@code image_url}) up to what {@code --max-image-bytes}
 * encodes to in base64; any other string up to {@code --max-prompt-chars}, which bounds a request's text in total
 * anyway (no single tool description, stop string or grammar can usefully be longer).
 */
final class BoundedJsonBody {

  /** Room for a data URL's {@code data:<media type>;base64,} prefix. */
  private static final int DATA_URL_PREFIX_CHARS = 1024;

  private BoundedJsonBody() {}

  /** {@code content} as a tree; a too-long string is a {@link RequestException} naming its field. */
  static JsonNode read(ObjectMapper json, ByteBuf content, int maxTextChars, int maxImageBytes) throws IOException {
    long urlChars = 4L * ((maxImageBytes + 2L) / 3) + DATA_URL_PREFIX_CHARS;
    try (JsonParser parser = new Checked(json.getFactory().createParser((java.io.InputStream) new ByteBufInputStream(content)), maxTextChars,
        (int) Math.min(Integer.MAX_VALUE, urlChars))) {
      return json.readTree(parser);
    }
  }

  /** The parser Jackson's tree reader sees: strings are measured before they are made. */
  private static final class Checked extends JsonParserDelegate {
    private final int maxTextChars;
    private final int maxUrlChars;

    Checked(JsonParser parser, int maxTextChars, int maxUrlChars) {
      super(parser);
      this.maxTextChars = maxTextChars;
      this.maxUrlChars = maxUrlChars;
    }

    @Override
    public String getText() throws IOException {
      check();
      return super.getText();
    }

    @Override
    public String getValueAsString() throws IOException {
      check();
      return super.getValueAsString();
    }

    @Override
    public String getValueAsString(String defaultValue) throws IOException {
      check();
      return super.getValueAsString(defaultValue);
    }

    @Override
    public char[] getTextCharacters() throws IOException {
      check();
      return super.getTextCharacters();
    }

    private void check() throws IOException {
      if (!delegate.hasToken(JsonToken.VALUE_STRING)) return;
      int length = delegate.getTextLength(); // finishes the token into segments; joins nothing
      String name = delegate.currentName();
      boolean url = "url".equals(name) || "image_url".equals(name);
      int limit = url ? maxUrlChars : maxTextChars;
      if (length > limit) {
        throw RequestException.invalid(param(delegate.getParsingContext()), String.format(java.util.Locale.ROOT,
            "a string of %,d characters, over the limit of %,d (%s)%s", length, limit, url ? "max-image-bytes" : "max-prompt-chars",
            url ? ", in base64" : "; only an image's data URL may be longer"));
      }
    }
  }

  /** OpenAI's {@code param} form of the value at {@code context}: {@code messages[0].content[1].text}. */
  static String param(JsonStreamContext context) {
    Deque<String> parts = new ArrayDeque<>();
    for (JsonStreamContext c = context; c != null && !c.inRoot(); c = c.getParent()) {
      if (c.inArray()) parts.push("[" + Math.max(0, c.getCurrentIndex()) + "]");
      else if (c.getCurrentName() != null) parts.push("." + c.getCurrentName());
    }
    String path = String.join("", parts);
    return path.startsWith(".") ? path.substring(1) : path.isEmpty() ? "body" : path;
  }
}
