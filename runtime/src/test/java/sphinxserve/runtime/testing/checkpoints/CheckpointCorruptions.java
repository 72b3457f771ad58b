package sphinxserve.runtime.testing.checkpoints;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Damages a checkpoint folder written by {@link RandomCheckpoints}, for error-path tests of loaders. Each method
 * returns the file it changed, so a test can assert that the error names it.
 */
public final class CheckpointCorruptions {

  private static final ObjectMapper JSON = new ObjectMapper();

  private CheckpointCorruptions() {}

  /**
   * The safetensors file of {@code dir} holding {@code tensor}: by the sharded index's weight map when there is
   * one, else {@code model.safetensors} (HF) or {@code consolidated.safetensors} (Meta).
   */
  public static Path fileOf(Path dir, String tensor) throws IOException {
    Path index = dir.resolve("model.safetensors.index.json");
    if (Files.exists(index)) {
      JsonNode file = JSON.readTree(index.toFile()).path("weight_map").get(tensor);
      if (file == null) throw new IllegalArgumentException(index + " does not list " + tensor);
      return dir.resolve(file.asText());
    }
    Path single = dir.resolve("model.safetensors");
    return Files.exists(single) ? single : dir.resolve("consolidated.safetensors");
  }

  /** Cuts the last {@code bytes} bytes off {@code file} (a shard), leaving its header claiming the full data. */
  public static Path truncate(Path file, long bytes) throws IOException {
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
      channel.truncate(Math.max(0, channel.size() - bytes));
    }
    return file;
  }

  /** Deletes {@code file} (a shard the index still names). */
  public static Path delete(Path file) throws IOException {
    Files.delete(file);
    return file;
  }

  /**
   * Rewrites {@code tensor}'s shape in its file's header to {@code shape}, leaving data offsets and bytes alone
   * (so a shape with another element count is also inconsistent with its offsets).
   */
  public static Path setShape(Path dir, String tensor, long... shape) throws IOException {
    Path file = fileOf(dir, tensor);
    ObjectNode header = RawSafetensors.readHeader(file);
    ArrayNode node = entry(header, file, tensor).putArray("shape");
    for (long d : shape) node.add(d);
    RawSafetensors.rewriteHeader(file, header);
    return file;
  }

  /** Rewrites {@code tensor}'s dtype in its file's header to {@code dtype} (e.g. an unknown {@code "F8_E9M0"}). */
  public static Path setDtype(Path dir, String tensor, String dtype) throws IOException {
    Path file = fileOf(dir, tensor);
    ObjectNode header = RawSafetensors.readHeader(file);
    entry(header, file, tensor).put("dtype", dtype);
    RawSafetensors.rewriteHeader(file, header);
    return file;
  }

  /** Removes {@code tensor}'s entry from its file's header (its bytes stay, unreferenced). */
  public static Path removeTensor(Path dir, String tensor) throws IOException {
    Path file = fileOf(dir, tensor);
    ObjectNode header = RawSafetensors.readHeader(file);
    entry(header, file, tensor);
    header.remove(tensor);
    RawSafetensors.rewriteHeader(file, header);
    return file;
  }

  private static ObjectNode entry(ObjectNode header, Path file, String tensor) {
    JsonNode entry = header.get(tensor);
    if (!(entry instanceof ObjectNode object)) throw new IllegalArgumentException(file + " has no tensor " + tensor);
    return object;
  }
}
