package sphinxserve.runtime.bundle;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the safetensors format (the exchange format of Hugging Face and of {@code tools/}): an 8-byte
 * little-endian header length, a JSON header mapping each tensor name to its dtype, shape and byte range,
 * then the raw little-endian data. Supports F32, F16 and I64, the dtypes the project's tools write.
 *
 * <p>The header is parsed as a {@code google.protobuf.Struct} (arbitrary JSON), so no JSON library beyond
 * protobuf's is needed. Every malformed input is a {@link BundleException} naming the source and the tensor.
 */
public final class SafeTensors {

  /** One tensor: its dtype, shape and little-endian bytes. */
  public record Tensor(String name, String dtype, long[] shape, ByteBuffer data) {

    /** Elements: the product of the shape. */
    public long count() {
      long n = 1;
      for (long d : shape) n *= d;
      return n;
    }

    /** The values as floats (F32, or F16 widened). */
    public float[] floats() {
      float[] out = new float[Math.toIntExact(count())];
      ByteBuffer b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
      switch (dtype) {
        case "F32" -> b.asFloatBuffer().get(out);
        case "F16" -> {
          for (int i = 0; i < out.length; i++) out[i] = Float.float16ToFloat(b.getShort(2 * i));
        }
        default -> throw new BundleException("tensor " + name + " is " + dtype + ", not a float type");
      }
      return out;
    }

    /** The values of an I64 tensor. */
    public long[] longs() {
      if (!dtype.equals("I64")) throw new BundleException("tensor " + name + " is " + dtype + ", not I64");
      long[] out = new long[Math.toIntExact(count())];
      data.duplicate().order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(out);
      return out;
    }
  }

  private static final Map<String, Integer> DTYPE_BYTES = Map.of("F32", 4, "F16", 2, "I64", 8);

  /** Headers beyond this are refused: a corrupt length must not allocate gigabytes. */
  static final int MAX_HEADER_BYTES = 16 << 20;

  private final Map<String, Tensor> tensors;

  private SafeTensors(Map<String, Tensor> tensors) {
    this.tensors = tensors;
  }

  /** Parses {@code bytes}, read from {@code source} (named in errors). */
  public static SafeTensors parse(byte[] bytes, String source) {
    if (bytes.length < 8) throw new BundleException(source + ": too short for a safetensors file");
    ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    long headerLength = buf.getLong(0);
    if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > bytes.length) {
      throw new BundleException(source + ": safetensors header length " + headerLength + " does not fit the file");
    }
    String json = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);
    Struct.Builder header = Struct.newBuilder();
    try {
      JsonFormat.parser().merge(json, header);
    } catch (InvalidProtocolBufferException e) {
      throw new BundleException(source + ": safetensors header is not valid JSON: " + e.getMessage(), e);
    }
    int dataStart = 8 + (int) headerLength;
    long dataLength = bytes.length - dataStart;
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (Map.Entry<String, Value> entry : header.getFieldsMap().entrySet()) {
      String name = entry.getKey();
      if (name.equals("__metadata__")) continue; // free-form strings for people; nothing reads them
      tensors.put(name, tensor(name, entry.getValue().getStructValue(), buf, dataStart, dataLength, source));
    }
    return new SafeTensors(Collections.unmodifiableMap(tensors));
  }

  private static Tensor tensor(String name, Struct info, ByteBuffer buf, int dataStart, long dataLength, String source) {
    String where = source + ": tensor " + name;
    String dtype = info.getFieldsOrDefault("dtype", Value.getDefaultInstance()).getStringValue();
    Integer elementBytes = DTYPE_BYTES.get(dtype);
    if (elementBytes == null) throw new BundleException(where + " has dtype '" + dtype + "'; supported: F32, F16, I64");
    List<Value> shapeValues = info.getFieldsOrDefault("shape", Value.getDefaultInstance()).getListValue().getValuesList();
    List<Value> offsets = info.getFieldsOrDefault("data_offsets", Value.getDefaultInstance()).getListValue().getValuesList();
    if (offsets.size() != 2) throw new BundleException(where + " needs data_offsets [begin, end]");
    long[] shape = new long[shapeValues.size()];
    long count = 1;
    for (int i = 0; i < shape.length; i++) {
      shape[i] = exactLong(shapeValues.get(i).getNumberValue(), where + " shape");
      if (shape[i] < 0) throw new BundleException(where + " has a negative dimension");
      count *= shape[i];
    }
    long begin = exactLong(offsets.get(0).getNumberValue(), where + " data_offsets");
    long end = exactLong(offsets.get(1).getNumberValue(), where + " data_offsets");
    if (begin < 0 || end < begin || end > dataLength) {
      throw new BundleException(where + ": bytes [" + begin + ", " + end + ") lie outside the " + dataLength + "-byte data");
    }
    if (end - begin != count * elementBytes) {
      throw new BundleException(where + ": " + (end - begin) + " bytes for " + count + " " + dtype + " elements");
    }
    ByteBuffer slice = buf.slice(dataStart + (int) begin, (int) (end - begin)).asReadOnlyBuffer();
    return new Tensor(name, dtype, shape, slice);
  }

  private static long exactLong(double value, String what) {
    if (value != Math.rint(value) || Math.abs(value) > (1L << 53)) throw new BundleException(what + ": " + value + " is not an integer");
    return (long) value;
  }

  /** Tensor names, in header order. */
  public List<String> names() {
    return new ArrayList<>(tensors.keySet());
  }

  /** The tensor {@code name}, or an error naming it. */
  public Tensor get(String name) {
    Tensor t = tensors.get(name);
    if (t == null) throw new BundleException("no tensor named " + name);
    return t;
  }
}
