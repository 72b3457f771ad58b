package sphinxserve.runtime.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import sphinxserve.api.TextTokenizer;

/**
 * A bundle's {@code tokenizer.json} served through DJL's binding of Hugging Face tokenizers (Rust). Thread-safe:
 * encode and decode run concurrently; {@link #close} waits for calls in flight and fails later calls.
 */
public final class HfTextTokenizer implements TextTokenizer, AutoCloseable {
  /*
   * Two native tokenizers from one file:
   *   - `decoder` is the file as written; decode(ids) skips the tokens it marks special.
   *   - `encoder` is the same file with the special entries of "added_tokens" removed. Hugging Face matches
   *     added tokens in the input text even with add_special_tokens=false, so with the file as written the
   *     user text "<image>" would become the image placeholder id and "</s>" an EOS: a prompt injection.
   *     Without them the text is ordinary bytes ("<", "image", ">"). Prompts get BOS and image placeholders
   *     by id, never by text; this is the contract's "without BOS/EOS or any other special token".
   * Both are created with truncation and padding off: DJL otherwise truncates to 512 tokens by default.
   *
   * tokenBytes is a table built at load. Byte-level vocabularies (GPT-2, LLaMA-3, ours) invert the GPT-2
   * bytes_to_unicode map; others (SentencePiece-style BPE such as LLaMA-2's) map "<0xAB>" to that byte and
   * '▁' to a space, UTF-8 otherwise; there a decoder's "strip the first leading space" step is not applied,
   * so the bytes of a whole sequence may start with one space more than decode's text. Special tokens
   * contribute no bytes, matching decode.
   *
   * Offline: DJL extracts libtokenizers.so from its jar into its cache directory (DJL_CACHE_DIR or
   * ENGINE_CACHE_DIR, default ~/.djl.ai/tokenizers) and downloads nothing when loading from a file; its
   * newInstance does make a telemetry call (EC2 metadata at 169.254.169.254, 1 s timeouts, and an S3 GET)
   * unless the system property or environment variable OPT_OUT_TRACKING is true, or -Doffline=true. This
   * class sets OPT_OUT_TRACKING=true when neither is given.
   */

  /** DJL's switch for its telemetry call; set to {@code true} here unless the deployment chose otherwise. */
  static final String OPT_OUT_TRACKING = "OPT_OUT_TRACKING";

  static {
    if (System.getenv(OPT_OUT_TRACKING) == null && System.getProperty(OPT_OUT_TRACKING) == null) {
      System.setProperty(OPT_OUT_TRACKING, "true");
    }
  }

  /** DJL options: no specials added, no truncation, no padding. */
  private static final Map<String, String> DJL_OPTIONS = Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");

  private static final byte[] NO_BYTES = new byte[0];

  /** Reads tokenizer.json and writes its plain copy; thread-safe once configured. */
  private static final ObjectMapper JSON = new ObjectMapper();

  private final HuggingFaceTokenizer encoder;
  private final HuggingFaceTokenizer decoder;
  private final byte[][] tokenBytes;
  private final boolean[] special;
  private final Map<String, Integer> specialTokenIds;
  private final ReadWriteLock lock = new ReentrantReadWriteLock();
  /** Guarded by {@code lock}'s write lock for writes, its read lock for reads. */
  private boolean closed;

  private HfTextTokenizer(HuggingFaceTokenizer encoder, HuggingFaceTokenizer decoder, byte[][] tokenBytes, boolean[] special,
      Map<String, Integer> specialTokenIds) {
    this.encoder = encoder;
    this.decoder = decoder;
    this.tokenBytes = tokenBytes;
    this.special = special;
    this.specialTokenIds = specialTokenIds;
  }

  /** Loads a {@code tokenizer.json} file (or a directory holding one). */
  public static HfTextTokenizer load(Path path) throws IOException {
    Path file = Files.isDirectory(path) ? path.resolve("tokenizer.json") : path;
    return fromJson(Files.readString(file, StandardCharsets.UTF_8));
  }

  /**
   * Loads {@code tokenizer.json} text.
   *
   * @throws IllegalArgumentException when the text is not JSON, or not a tokenizer.json with a model vocab
   *     (ids that are not non-negative integers, added tokens without an id or content)
   * @throws IOException when the native tokenizer rejects it
   */
  public static HfTextTokenizer fromJson(String json) throws IOException {
    JsonNode parsed;
    try {
      parsed = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("tokenizer.json: not JSON: " + e.getOriginalMessage(), e);
    }
    if (!(parsed instanceof ObjectNode root) || !(root.get("model") instanceof ObjectNode model)
        || !(model.get("vocab") instanceof ObjectNode vocab)) {
      throw new IllegalArgumentException("tokenizer.json: no model.vocab object");
    }
    JsonNode addedNode = root.get("added_tokens");
    if (addedNode != null && !addedNode.isNull() && !addedNode.isArray()) {
      throw new IllegalArgumentException("tokenizer.json: added_tokens is not an array");
    }
    ArrayNode addedTokens = addedNode instanceof ArrayNode array ? array : JSON.createArrayNode();
    int vocabSize = 0;
    for (Map.Entry<String, JsonNode> e : vocab.properties()) {
      vocabSize = Math.max(vocabSize, tokenId(e.getValue(), "model.vocab[\"" + e.getKey() + "\"]") + 1);
    }
    for (int i = 0; i < addedTokens.size(); i++) {
      JsonNode token = addedTokens.get(i);
      if (!token.isObject() || !token.path("content").isTextual()) {
        throw new IllegalArgumentException("tokenizer.json: added_tokens[" + i + "] has no string content");
      }
      vocabSize = Math.max(vocabSize, tokenId(token.get("id"), "added_tokens[" + i + "].id") + 1);
    }
    boolean byteLevel = mentionsByteLevel(root.get("decoder"));
    byte[][] bytes = new byte[vocabSize][];
    boolean[] special = new boolean[vocabSize];
    for (Map.Entry<String, JsonNode> e : vocab.properties()) {
      bytes[e.getValue().intValue()] = bytesOf(e.getKey(), byteLevel);
    }
    Map<String, Integer> specialTokenIds = new LinkedHashMap<>();
    ArrayNode keptAdded = JSON.createArrayNode();
    for (JsonNode token : addedTokens) {
      int id = token.get("id").intValue();
      String content = token.get("content").textValue();
      if (token.path("special").asBoolean(false)) {
        special[id] = true;
        bytes[id] = NO_BYTES;
        specialTokenIds.put(content, id);
      } else {
        keptAdded.add(token);
        if (bytes[id] == null) {
          bytes[id] = content.getBytes(StandardCharsets.UTF_8);
        }
      }
    }
    for (int id = 0; id < vocabSize; id++) {
      if (bytes[id] == null) {
        bytes[id] = NO_BYTES; // an id nothing names
      }
    }
    root.set("added_tokens", keptAdded);
    String plainJson = JSON.writeValueAsString(root);
    HuggingFaceTokenizer decoder = newDjlTokenizer(json);
    try {
      return new HfTextTokenizer(newDjlTokenizer(plainJson), decoder, bytes, special, Collections.unmodifiableMap(specialTokenIds));
    } catch (IOException | RuntimeException e) {
      decoder.close();
      throw e;
    }
  }

  @Override
  public int[] encode(String text) {
    lock.readLock().lock();
    try {
      checkOpen();
      long[] ids = encodeIds(text);
      int[] out = new int[ids.length];
      for (int i = 0; i < ids.length; i++) {
        out[i] = (int) ids[i];
      }
      return out;
    } finally {
      lock.readLock().unlock();
    }
  }

  @Override
  public byte[] tokenBytes(int id) {
    checkId(id);
    byte[] bytes = tokenBytes[id];
    return bytes.length == 0 ? NO_BYTES : bytes.clone();
  }

  @Override
  public String decode(int[] ids) {
    long[] longIds = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      checkId(ids[i]);
      longIds[i] = ids[i];
    }
    lock.readLock().lock();
    try {
      checkOpen();
      return decoder.decode(longIds, true);
    } finally {
      lock.readLock().unlock();
    }
  }

  @Override
  public int vocabSize() {
    return tokenBytes.length;
  }

  /** Whether {@code id} is a special token (flagged {@code special} in {@code added_tokens}). */
  public boolean isSpecial(int id) {
    checkId(id);
    return special[id];
  }

  /**
   * Content to id of every {@code added_tokens} entry marked {@code special}, in file order; unmodifiable. These
   * strings never come out of {@link #encode}: a chat prompt inserts them by id ({@code ChatPromptEncoder}).
   */
  public Map<String, Integer> specialTokenIds() {
    return specialTokenIds;
  }

  /** Frees both native tokenizers; waits for calls in flight. Idempotent. */
  @Override
  public void close() {
    lock.writeLock().lock();
    try {
      if (!closed) {
        closed = true;
        encoder.close();
        decoder.close();
      }
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("tokenizer is closed");
    }
  }

  private void checkId(int id) {
    if (id < 0 || id >= tokenBytes.length) {
      throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + tokenBytes.length + ")");
    }
  }

  /**
   * Token ids through DJL's JNI layer directly: {@code HuggingFaceTokenizer.encode} also copies out type ids,
   * token strings, word ids, masks and char spans (eight JNI calls where the ids need one).
   */
  private long[] encodeIds(String text) {
    long encoding = TokenizersLibrary.LIB.encode(encoder.getHandle(), text, false);
    try {
      return TokenizersLibrary.LIB.getTokenIds(encoding);
    } finally {
      TokenizersLibrary.LIB.deleteEncoding(encoding);
    }
  }

  private static HuggingFaceTokenizer newDjlTokenizer(String json) throws IOException {
    try (InputStream in = new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8))) {
      return HuggingFaceTokenizer.newInstance(in, DJL_OPTIONS);
    }
  }

  /** Whether a decoder (or a Sequence of them) is ByteLevel. */
  private static boolean mentionsByteLevel(JsonNode decoder) {
    if (decoder == null || !decoder.isObject()) {
      return false;
    }
    if ("ByteLevel".equals(decoder.path("type").textValue())) {
      return true;
    }
    for (JsonNode part : decoder.path("decoders")) {
      if (mentionsByteLevel(part)) {
        return true;
      }
    }
    return false;
  }

  /** A token id: a JSON integer in {@code [0, Integer.MAX_VALUE)}; {@code where} names it in the error. */
  private static int tokenId(JsonNode id, String where) {
    if (id == null || !id.canConvertToInt() || !id.isIntegralNumber() || id.intValue() < 0 || id.intValue() == Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tokenizer.json: " + where + " is not a token id: " + id);
    }
    return id.intValue();
  }

  /** The bytes a vocab entry stands for (see the class comment). */
  private static byte[] bytesOf(String token, boolean byteLevel) {
    if (byteLevel) {
      byte[] bytes = ByteLevel.decode(token);
      return bytes != null ? bytes : token.getBytes(StandardCharsets.UTF_8);
    }
    if (token.length() == 6 && token.startsWith("<0x") && token.endsWith(">")) {
      try {
        return new byte[] {(byte) Integer.parseInt(token, 3, 5, 16)};
      } catch (NumberFormatException notAByteToken) {
        // an ordinary token that looks like one
      }
    }
    return token.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
  }
}
