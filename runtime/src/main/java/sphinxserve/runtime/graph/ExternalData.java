package sphinxserve.runtime.graph;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import sphinxserve.runtime.onnx.StringStringEntryProto;
import sphinxserve.runtime.onnx.TensorProto;

/**
 * The file beside a model that holds its large initializers (ONNX "external data"): a protobuf message cannot
 * exceed 2 GB, so a model of real size keeps its weights out of the {@code .onnx} file, which then holds only
 * the graph and each weight's {@code (location, offset, length)}. Writing weights here as they are made also
 * keeps the builder's memory to about one tensor, whatever the model's size.
 *
 * <p>Each tensor starts on a {@link #ALIGNMENT}-byte boundary so ONNX Runtime may memory-map it.
 */
public final class ExternalData implements AutoCloseable {

  /** Offsets are multiples of this (the page size), as ONNX Runtime needs to map a tensor rather than copy it. */
  public static final int ALIGNMENT = 4096;

  /** Tensors smaller than this stay inside the model: a page apiece for a norm's gain would be waste. */
  public static final int MIN_EXTERNAL_BYTES = 4096;

  private final String location;
  private final OutputStream out;
  private long offset;

  private ExternalData(String location, OutputStream out) {
    this.location = location;
    this.out = out;
  }

  /**
   * Where an external initializer's bytes lie.
   *
   * @param tensor the initializer's name, for errors
   * @param file the data file's name, beside the model
   * @param offset byte offset in it
   * @param length byte count
   */
  public record Slice(String tensor, String file, long offset, long length) {

    /**
     * The data file, confined to {@code folder} (the model's): a bundle comes from elsewhere, and its graph's
     * {@code location} is a path ONNX Runtime would open as it stands. Refused, naming the initializer and the
     * path: an empty or absolute location, one with a {@code ..} part, and one whose real path (links followed)
     * is outside the folder's.
     *
     * @throws IllegalArgumentException when the location leaves the folder
     * @throws IOException when the file is missing or unreadable
     */
    public Path fileIn(Path folder) throws IOException {
      String refused = null;
      Path relative = null;
      try {
        relative = Path.of(file);
      } catch (java.nio.file.InvalidPathException e) {
        refused = "not a valid path";
      }
      if (refused == null) {
        if (file.isEmpty()) refused = "empty";
        else if (relative.isAbsolute() || file.startsWith("/") || file.startsWith("\\")) refused = "an absolute path";
        else if (file.contains("\\")) refused = "a path with a backslash";
        else {
          for (Path part : relative) if (part.toString().equals("..")) refused = "a path with '..'";
        }
      }
      if (refused != null) throw new IllegalArgumentException(outside(folder, refused));
      Path base = folder.toAbsolutePath().normalize();
      Path resolved = base.resolve(relative).normalize();
      if (!resolved.startsWith(base) || resolved.equals(base)) throw new IllegalArgumentException(outside(folder, "outside the folder"));
      Path real;
      try {
        real = resolved.toRealPath();
      } catch (java.nio.file.NoSuchFileException e) {
        throw new java.nio.file.NoSuchFileException(resolved.toString(), null,
            "initializer '" + tensor + "': its external data file '" + file + "' is missing");
      }
      if (!real.startsWith(base.toRealPath())) {
        throw new IllegalArgumentException(outside(folder, "a link to " + real + ", outside the folder"));
      }
      if (!Files.isRegularFile(real)) throw new IllegalArgumentException(outside(folder, "not a regular file"));
      return real;
    }

    private String outside(Path folder, String why) {
      return "initializer '" + tensor + "' has external data location '" + file + "': " + why
          + "; external data must be a file inside the model's folder " + folder;
    }

    /** The slice's bytes, read from the data file in {@code folder} (the model's; {@link #fileIn} confines it). */
    public byte[] read(Path folder) throws IOException {
      try (RandomAccessFile data = new RandomAccessFile(fileIn(folder).toFile(), "r")) {
        byte[] bytes = new byte[Math.toIntExact(length)];
        data.seek(offset);
        data.readFully(bytes);
        return bytes;
      }
    }
  }

  /** Where {@code tensor}'s data lies when it is external; null when it is inside the model. */
  public static Slice sliceOf(TensorProto tensor) {
    if (tensor.getDataLocation() != TensorProto.DataLocation.EXTERNAL) return null;
    String file = null;
    long offset = 0;
    long length = -1;
    for (StringStringEntryProto e : tensor.getExternalDataList()) {
      switch (e.getKey()) {
        case "location" -> file = e.getValue();
        case "offset" -> offset = Long.parseLong(e.getValue());
        case "length" -> length = Long.parseLong(e.getValue());
        default -> { }
      }
    }
    if (file == null || length < 0 || offset < 0) {
      throw new IllegalArgumentException(tensor.getName() + ": external data without location or length, or with a negative offset");
    }
    return new Slice(tensor.getName(), file, offset, length);
  }

  /** A new data file {@code file}; the model refers to it by its file name (it must stay beside the model). */
  public static ExternalData create(Path file) throws IOException {
    return new ExternalData(file.getFileName().toString(), new BufferedOutputStream(Files.newOutputStream(file), 1 << 20));
  }

  /** The file name the model refers to. */
  public String location() {
    return location;
  }

  /** Appends {@code bytes} at the next aligned offset; returns that offset. */
  long append(byte[] bytes) {
    try {
      long at = pad();
      out.write(bytes);
      offset = at + bytes.length;
      return at;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write external data " + location + ": " + e.getMessage(), e);
    }
  }

  /**
   * Appends {@code values} as little-endian float32 at the next aligned offset; returns that offset. Converts a
   * chunk at a time, so a large tensor needs no byte copy of its own.
   */
  long append(float[] values) {
    try {
      long at = pad();
      java.nio.ByteBuffer chunk = java.nio.ByteBuffer.allocate(CHUNK_FLOATS * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      for (int from = 0; from < values.length; from += CHUNK_FLOATS) {
        int n = Math.min(CHUNK_FLOATS, values.length - from);
        chunk.clear();
        chunk.asFloatBuffer().put(values, from, n);
        out.write(chunk.array(), 0, n * 4);
      }
      offset = at + 4L * values.length;
      return at;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write external data " + location + ": " + e.getMessage(), e);
    }
  }

  private static final int CHUNK_FLOATS = 1 << 18;

  /** Zeros up to the next aligned offset; returns it. */
  private long pad() throws IOException {
    long padding = (ALIGNMENT - offset % ALIGNMENT) % ALIGNMENT;
    for (long i = 0; i < padding; i++) out.write(0);
    return offset + padding;
  }

  /** Bytes written so far. */
  public long size() {
    return offset;
  }

  @Override
  public void close() throws IOException {
    out.close();
  }
}
