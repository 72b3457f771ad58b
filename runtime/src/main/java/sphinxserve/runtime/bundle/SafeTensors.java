package sphinxserve.runtime.bundle;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the safetensors format (the exchange format of Hugging Face and of {@code tools/}): an 8-byte
 * little-endian header length, a JSON header mapping each tensor name to its dtype, shape and byte range,
 * then the raw little-endian data. Supports F32, F16, BF16 and I64.
 *
 * <p>A file is either bytes in memory ({@link #parse}) or memory-mapped ({@link #map}): a mapped file is never
 * read into the heap as a whole, so checkpoints of many gigabytes are read one tensor at a time, and a file
 * past 2 GB is no special case. Every malformed input, a truncated file included, is a {@link BundleException}
 * naming the source and the tensor.
 */
public final class SafeTensors {

  /** One tensor: its dtype, shape and little-endian bytes. */
  public record Tensor(String name, String dtype, long[] shape, MemorySegment data) {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Elements: the product of the shape. */
    public long count() {
      long n = 1;
      for (long d : shape) n *= d;
      return n;
    }

    /** Whether the values are a floating-point type {@link #floats} widens. */
    public boolean isFloat() {
      return dtype.equals("F32") || dtype.equals("F16") || dtype.equals("BF16");
    }

    /** The values as floats (F32, or F16 / BF16 widened exactly). */
    public float[] floats() {
      if (count() > Integer.MAX_VALUE - 8) throw new BundleException("tensor " + name + " has " + count() + " elements, more than a Java array holds");
      int n = (int) count();
      switch (dtype) {
        case "F32" -> {
          return data.toArray(F32);
        }
        case "F16" -> {
          float[] out = new float[n];
          for (int i = 0; i < n; i++) out[i] = Float.float16ToFloat(data.getAtIndex(I16, i));
          return out;
        }
        case "BF16" -> {
          float[] out = new float[n];
          // bfloat16 is the top half of a float32: widening is a shift, exact.
          for (int i = 0; i < n; i++) out[i] = Float.intBitsToFloat(data.getAtIndex(I16, i) << 16);
          return out;
        }
        default -> throw new BundleException("tensor " + name + " is " + dtype + ", not a float type");
      }
    }

    /** The values of an I64 tensor. */
    public long[] longs() {
      if (!dtype.equals("I64")) throw new BundleException("tensor " + name + " is " + dtype + ", not I64");
      return data.toArray(I64);
    }

    /** The shape as text, e.g. {@code [2048, 512]}. */
    public String shapeText() {
      return java.util.Arrays.toString(shape);
    }
  }

  private static final Map<String, Integer> DTYPE_BYTES = Map.of("F32", 4, "F16", 2, "BF16", 2, "I64", 8);

  /** Headers beyond this are refused: a corrupt length must not allocate gigabytes. */
  static final int MAX_HEADER_BYTES = 100 << 20;

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Map<String, Tensor> tensors;

  private SafeTensors(Map<String, Tensor> tensors) {
    this.tensors = tensors;
  }

  /** Parses {@code bytes}, read from {@code source} (named in errors). */
  public static SafeTensors parse(byte[] bytes, String source) {
    return parse(MemorySegment.ofArray(bytes), source);
  }

  /**
   * Maps {@code file} read-only; the mapping lives as long as the returned object (or a tensor or segment of
   * it) is reachable.
   */
  public static SafeTensors map(Path file) {
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      return parse(channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), Arena.ofAuto()), file.toString());
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read (" + e + ")", e);
    }
  }

  private static SafeTensors parse(MemorySegment file, String source) {
    long size = file.byteSize();
    if (size < 8) throw new BundleException(source + ": too short for a safetensors file");
    long headerLength = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
    if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
      throw new BundleException(source + ": safetensors header length " + headerLength + " does not fit the " + size
          + "-byte file (truncated or not safetensors)");
    }
    byte[] headerBytes = file.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
    JsonNode header;
    try {
      header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
    } catch (JsonProcessingException e) {
      throw new BundleException(source + ": safetensors header is not valid JSON: " + e.getOriginalMessage(), e);
    }
    if (header == null || !header.isObject()) throw new BundleException(source + ": safetensors header is not a JSON object");
    long dataStart = 8 + headerLength;
    MemorySegment data = file.asSlice(dataStart);
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> entry = it.next();
      String name = entry.getKey();
      if (name.equals("__metadata__")) continue; // free-form strings for people; nothing reads them
      tensors.put(name, tensor(name, entry.getValue(), data, source));
    }
    return new SafeTensors(Collections.unmodifiableMap(tensors));
  }

  private static Tensor tensor(String name, JsonNode info, MemorySegment data, String source) {
    String where = source + ": tensor " + name;
    String dtype = info.path("dtype").asText("");
    Integer elementBytes = DTYPE_BYTES.get(dtype);
    if (elementBytes == null) {
      throw new BundleException(where + " has dtype '" + dtype + "'; supported: F32, F16, BF16, I64");
    }
    JsonNode shapeNode = info.path("shape");
    JsonNode offsets = info.path("data_offsets");
    if (!shapeNode.isArray()) throw new BundleException(where + " needs a shape array");
    if (!offsets.isArray() || offsets.size() != 2) throw new BundleException(where + " needs data_offsets [begin, end]");
    long[] shape = new long[shapeNode.size()];
    long count = 1;
    for (int i = 0; i < shape.length; i++) {
      shape[i] = exactLong(shapeNode.get(i), where + " shape");
      if (shape[i] < 0) throw new BundleException(where + " has a negative dimension");
      count = Math.multiplyExact(count, shape[i]);
    }
    long begin = exactLong(offsets.get(0), where + " data_offsets");
    long end = exactLong(offsets.get(1), where + " data_offsets");
    long dataLength = data.byteSize();
    if (begin < 0 || end < begin || end > dataLength) {
      throw new BundleException(where + ": bytes [" + begin + ", " + end + ") lie outside the " + dataLength
          + "-byte data (truncated file?)");
    }
    if (end - begin != count * elementBytes) {
      throw new BundleException(where + ": " + (end - begin) + " bytes for " + count + " " + dtype + " elements");
    }
    return new Tensor(name, dtype, shape, data.asSlice(begin, end - begin).asReadOnly());
  }

  private static long exactLong(JsonNode value, String what) {
    if (value == null || !value.canConvertToExactIntegral() || !value.canConvertToLong()) {
      throw new BundleException(what + ": " + value + " is not an integer");
    }
    return value.asLong();
  }

  /** Tensor names, in header order. */
  public List<String> names() {
    return new ArrayList<>(tensors.keySet());
  }

  /** Whether a tensor {@code name} is present. */
  public boolean contains(String name) {
    return tensors.containsKey(name);
  }

  /** The tensor {@code name}, or an error naming it. */
  public Tensor get(String name) {
    Tensor t = tensors.get(name);
    if (t == null) throw new BundleException("no tensor named " + name);
    return t;
  }
}
