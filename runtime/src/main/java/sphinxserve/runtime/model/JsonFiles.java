package sphinxserve.runtime.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import sphinxserve.runtime.bundle.BundleException;

/** Reads the JSON files of a model folder; every failure names the file (and, through {@link Fields}, the field). */
final class JsonFiles {

  private static final ObjectMapper JSON = new ObjectMapper();

  private JsonFiles() {}

  /** The JSON object in {@code file}; an error naming it when missing, unreadable or not an object. */
  static JsonNode read(Path file) {
    if (!Files.isRegularFile(file)) throw new BundleException(file + ": missing");
    try {
      JsonNode node = JSON.readTree(file.toFile());
      if (node == null || !node.isObject()) throw new BundleException(file + ": not a JSON object");
      return node;
    } catch (JsonProcessingException e) {
      throw new BundleException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read (" + e + ")", e);
    }
  }

  /** {@link #read} when {@code file} exists, else null. */
  static JsonNode readIfPresent(Path file) {
    return Files.isRegularFile(file) ? read(file) : null;
  }

  /** Typed access to one JSON object's fields, with errors naming {@code file} and the field. */
  record Fields(Path file, JsonNode node) {

    boolean has(String field) {
      return node.hasNonNull(field);
    }

    int requiredInt(String field) {
      if (!has(field)) throw error(field, "is missing");
      return intValue(field, node.get(field));
    }

    int optionalInt(String field, int fallback) {
      return has(field) ? intValue(field, node.get(field)) : fallback;
    }

    double optionalDouble(String field, double fallback) {
      if (!has(field)) return fallback;
      JsonNode v = node.get(field);
      if (!v.isNumber()) throw error(field, "must be a number, got " + v);
      return v.asDouble();
    }

    double requiredDouble(String field) {
      if (!has(field)) throw error(field, "is missing");
      return optionalDouble(field, 0);
    }

    boolean optionalBoolean(String field, boolean fallback) {
      if (!has(field)) return fallback;
      JsonNode v = node.get(field);
      if (!v.isBoolean()) throw error(field, "must be true or false, got " + v);
      return v.asBoolean();
    }

    String optionalString(String field, String fallback) {
      if (!has(field)) return fallback;
      JsonNode v = node.get(field);
      if (!v.isTextual()) throw error(field, "must be a string, got " + v);
      return v.asText();
    }

    private int intValue(String field, JsonNode v) {
      if (!v.canConvertToExactIntegral() || !v.canConvertToInt()) throw error(field, "must be an integer, got " + v);
      return v.asInt();
    }

    BundleException error(String field, String problem) {
      return new BundleException(file + ": " + field + " " + problem);
    }
  }
}
