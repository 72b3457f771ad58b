package sphinxserve.runtime.testing.checkpoints;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A minimal, test-only reader and writer of the safetensors format, written independently of the production
 * {@code sphinxserve.runtime.bundle.SafeTensors}: an 8-byte little-endian header length {@code N}, {@code N}
 * bytes of JSON {@code {"__metadata__": {...}?, name: {"dtype", "shape", "data_offsets": [begin, end]}}} (padded
 * with spaces to a multiple of 8, as the Hugging Face writer does), then the raw little-endian data, offsets
 * counted from the end of the header.
 *
 * <p>Only the floating-point dtypes LLaMA checkpoints use are supported ({@link Dtype}); values are widened to
 * {@code float} on reading (exactly: every F16 and BF16 value is a float).
 */
public final class RawSafetensors {

  private static final ObjectMapper JSON = new ObjectMapper();

  private RawSafetensors() {}

  /** A stored floating-point dtype, as named in a safetensors header. */
  public enum Dtype {
    F32(4, "float32"),
    F16(2, "float16"),
    BF16(2, "bfloat16");

    private final int bytes;
    private final String torchName;

    Dtype(int bytes, String torchName) {
      this.bytes = bytes;
      this.torchName = torchName;
    }

    /** Bytes per element. */
    public int bytes() {
      return bytes;
    }

    /** The {@code torch_dtype} string of a transformers {@code config.json}: float32, float16 or bfloat16. */
    public String torchName() {
      return torchName;
    }

    /**
     * {@code value} rounded to this dtype (round to nearest, ties to even) and widened back to float: the value
     * a file of this dtype stores for {@code value}.
     */
    public float round(float value) {
      return switch (this) {
        case F32 -> value;
        case F16 -> Float.float16ToFloat(Float.floatToFloat16(value));
        case BF16 -> bf16ToFloat(floatToBf16(value));
      };
    }

    void put(ByteBuffer out, float value) {
      switch (this) {
        case F32 -> out.putFloat(value);
        case F16 -> out.putShort(Float.floatToFloat16(value));
        case BF16 -> out.putShort(floatToBf16(value));
      }
    }

    float get(ByteBuffer in) {
      return switch (this) {
        case F32 -> in.getFloat();
        case F16 -> Float.float16ToFloat(in.getShort());
        case BF16 -> bf16ToFloat(in.getShort());
      };
    }
  }

  /** The upper 16 bits of {@code value}'s float32 encoding after round-to-nearest-even (NaN stays a quiet NaN). */
  public static short floatToBf16(float value) {
    int bits = Float.floatToRawIntBits(value);
    if (Float.isNaN(value)) return (short) ((bits >>> 16) | 0x0040);
    int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
    return (short) (rounded >>> 16);
  }

  /** The float whose upper 16 bits are {@code bits} and lower 16 bits zero. */
  public static float bf16ToFloat(short bits) {
    return Float.intBitsToFloat((bits & 0xFFFF) << 16);
  }

  /**
   * A tensor: row-major values (already representable in {@code dtype}, or rounded to it on writing) and its
   * shape.
   */
  public record Tensor(Dtype dtype, long[] shape, float[] values) {
    public Tensor {
      long count = 1;
      for (long dim : shape) count *= dim;
      if (count != values.length) {
        throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + count + " values, not " + values.length);
      }
    }

    /** Bytes of data in a file. */
    public long byteSize() {
      return (long) values.length * dtype.bytes();
    }
  }

  /**
   * Writes {@code tensors} in iteration order to {@code file}, with {@code {"format":"pt"}} metadata. Returns the
   * number of data bytes (the sum of the tensors' sizes, which a sharded index's {@code total_size} counts).
   */
  public static long write(Path file, Map<String, Tensor> tensors) throws IOException {
    ObjectNode header = JSON.createObjectNode();
    header.putObject("__metadata__").put("format", "pt");
    long offset = 0;
    for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
      Tensor t = e.getValue();
      ObjectNode entry = header.putObject(e.getKey());
      entry.put("dtype", t.dtype().name());
      ArrayNode shape = entry.putArray("shape");
      for (long dim : t.shape()) shape.add(dim);
      entry.putArray("data_offsets").add(offset).add(offset + t.byteSize());
      offset += t.byteSize();
    }
    byte[] headerBytes = paddedHeader(header);
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(8 + headerBytes.length + offset)).order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(headerBytes.length).put(headerBytes);
    for (Tensor t : tensors.values()) {
      for (float v : t.values()) t.dtype().put(out, v);
    }
    Files.write(file, out.array());
    return offset;
  }

  /**
   * Reads every tensor of {@code file}, in header order, checking the header: a known dtype, offsets inside the
   * data section, and a byte count equal to the shape's element count times the dtype's size.
   *
   * @throws IOException naming the file (and tensor) on any inconsistency
   */
  public static Map<String, Tensor> read(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    if (bytes.length < 8) throw new IOException(file + ": " + bytes.length + " bytes, shorter than the 8-byte header length");
    ByteBuffer in = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    long headerLength = in.getLong();
    if (headerLength < 2 || headerLength > bytes.length - 8) {
      throw new IOException(file + ": header length " + headerLength + " does not fit in a file of " + bytes.length + " bytes");
    }
    JsonNode header = JSON.readTree(new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8));
    int dataStart = 8 + (int) headerLength;
    long dataLength = bytes.length - dataStart;
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getKey().equals("__metadata__")) continue;
      String where = file + ": tensor " + e.getKey();
      JsonNode entry = e.getValue();
      Dtype dtype;
      try {
        dtype = Dtype.valueOf(entry.path("dtype").asText());
      } catch (IllegalArgumentException unknown) {
        throw new IOException(where + ": unsupported dtype '" + entry.path("dtype").asText() + "'");
      }
      JsonNode shapeNode = entry.path("shape");
      long[] shape = new long[shapeNode.size()];
      long count = 1;
      for (int i = 0; i < shape.length; i++) {
        shape[i] = shapeNode.get(i).asLong();
        if (shape[i] < 0) throw new IOException(where + ": negative dimension in shape " + shapeNode);
        count *= shape[i];
      }
      JsonNode offsets = entry.path("data_offsets");
      long begin = offsets.path(0).asLong(-1);
      long end = offsets.path(1).asLong(-1);
      if (offsets.size() != 2 || begin < 0 || end < begin || end > dataLength) {
        throw new IOException(where + ": data_offsets " + offsets + " outside the " + dataLength + " data bytes");
      }
      if (end - begin != count * dtype.bytes()) {
        throw new IOException(where + ": shape " + shapeNode + " of " + dtype + " needs " + count * dtype.bytes()
            + " bytes, data_offsets " + offsets + " hold " + (end - begin));
      }
      ByteBuffer data = ByteBuffer.wrap(bytes, dataStart + (int) begin, (int) (end - begin)).slice().order(ByteOrder.LITTLE_ENDIAN);
      float[] values = new float[(int) count];
      for (int i = 0; i < values.length; i++) values[i] = dtype.get(data);
      tensors.put(e.getKey(), new Tensor(dtype, shape, values));
    }
    return tensors;
  }

  /** The JSON header of {@code file}, as stored (metadata included). */
  public static ObjectNode readHeader(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
    return (ObjectNode) JSON.readTree(new String(bytes, 8, Math.toIntExact(headerLength), StandardCharsets.UTF_8));
  }

  /** Replaces {@code file}'s header by {@code header}, keeping the data bytes as they are. */
  public static void rewriteHeader(Path file, ObjectNode header) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    long oldLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
    int dataStart = Math.toIntExact(8 + oldLength);
    byte[] headerBytes = paddedHeader(header);
    ByteBuffer out = ByteBuffer.allocate(8 + headerBytes.length + bytes.length - dataStart).order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(headerBytes.length).put(headerBytes).put(bytes, dataStart, bytes.length - dataStart);
    Files.write(file, out.array());
  }

  private static byte[] paddedHeader(ObjectNode header) throws IOException {
    byte[] raw = JSON.writeValueAsBytes(header);
    int padded = (raw.length + 7) / 8 * 8;
    byte[] out = Arrays.copyOf(raw, padded);
    Arrays.fill(out, raw.length, padded, (byte) ' ');
    return out;
  }
}
