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
import java.io.InputStream;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Locale;
import java.util.regex.Pattern;
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
 * <p>Limits, by where the string is: an image's data URL ({@code messages[i].content[j].image_url} or its
 * {@code .url}) up to what {@code --max-image-bytes} encodes to in base64 (line breaks allowed); a message's text
 * ({@code messages[i].content}, {@code messages[i].content[j].text}) and a completion's {@code prompt} up to
 * {@code --max-prompt-chars}, which bounds a request's text in total anyway; any other string (a grammar, a schema
 * given as a string, tool arguments) up to the larger of that and {@link #MIN_OTHER_CHARS}, the most the node's
 * validators accept of those.
 */
final class BoundedJsonBody {

  /** The floor of the limit on strings that are neither message text nor an image: the validators' own 64 KiB. */
  static final int MIN_OTHER_CHARS = 64 * 1024;
  /** Room for a data URL's {@code data:<media type>;base64,} prefix. */
  private static final int DATA_URL_PREFIX_CHARS = 1024;
  /** The most characters of one field name, and of the whole path, that a refusal repeats back. */
  private static final int MAX_NAME_CHARS = 64;
  private static final int MAX_PATH_CHARS = 256;

  private static final Pattern IMAGE_URL = Pattern.compile("messages\\[\\d+]\\.content\\[\\d+]\\.image_url(\\.url)?");
  private static final Pattern TEXT = Pattern.compile("messages\\[\\d+]\\.content(\\[\\d+]\\.text)?|prompt(\\[\\d+])?");

  private BoundedJsonBody() {}

  /** {@code content} as a tree; a too-long string is a {@link RequestException} naming its field. */
  static JsonNode read(ObjectMapper json, ByteBuf content, int maxTextChars, int maxImageBytes) throws IOException {
    // Base64 of the largest image, with a MIME-style line break ("\r\n") after every 76 characters.
    long urlChars = 4L * ((maxImageBytes + 2L) / 3) * 78 / 76 + DATA_URL_PREFIX_CHARS;
    Limits limits = new Limits(maxTextChars, (int) Math.min(Integer.MAX_VALUE, urlChars), Math.max(maxTextChars, MIN_OTHER_CHARS));
    try (JsonParser parser = new Checked(json.getFactory().createParser((InputStream) new ByteBufInputStream(content)), limits)) {
      return json.readTree(parser);
    }
  }

  private record Limits(int text, int imageUrl, int other) {
    /** The smallest of the three: a string at most this long needs no path to be judged. */
    int least() {
      return Math.min(text, Math.min(imageUrl, other));
    }
  }

  /** The parser Jackson's tree reader sees: strings are measured before they are made. */
  private static final class Checked extends JsonParserDelegate {
    private final Limits limits;

    Checked(JsonParser parser, Limits limits) {
      super(parser);
      this.limits = limits;
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
      if (length <= limits.least()) return;
      String path = param(delegate.getParsingContext());
      int limit;
      String flag;
      if (IMAGE_URL.matcher(path).matches()) {
        limit = limits.imageUrl();
        flag = "max-image-bytes";
      } else if (TEXT.matcher(path).matches()) {
        limit = limits.text();
        flag = "max-prompt-chars";
      } else {
        limit = limits.other();
        flag = "max-prompt-chars";
      }
      if (length > limit) {
        throw RequestException.invalid(path, String.format(Locale.ROOT, "a string of %,d characters, over the limit of %,d (%s)",
            length, limit, flag));
      }
    }
  }

  /**
   * OpenAI's {@code param} form of the value at {@code context}: {@code messages[0].content[1].text}; a name over
   * {@link #MAX_NAME_CHARS} characters, or a path over {@link #MAX_PATH_CHARS}, is cut (marked "…"), so a refusal
   * never repeats a client's huge keys back.
   */
  static String param(JsonStreamContext context) {
    Deque<String> parts = new ArrayDeque<>();
    for (JsonStreamContext c = context; c != null && !c.inRoot(); c = c.getParent()) {
      if (c.inArray()) {
        parts.push("[" + Math.max(0, c.getCurrentIndex()) + "]");
      } else if (c.getCurrentName() != null) {
        String name = c.getCurrentName();
        parts.push("." + (name.length() > MAX_NAME_CHARS ? name.substring(0, MAX_NAME_CHARS) + "…" : name));
      }
    }
    String path = String.join("", parts);
    if (path.startsWith(".")) path = path.substring(1);
    if (path.isEmpty()) return "body";
    return path.length() > MAX_PATH_CHARS ? path.substring(0, MAX_PATH_CHARS) + "…" : path;
  }
}
