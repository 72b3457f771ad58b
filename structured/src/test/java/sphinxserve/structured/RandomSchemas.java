package sphinxserve.structured;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Random schemas of the supported subset, every string and array bounded (objects may allow additional
 * properties, which are not): the converter's keywords in
 * combinations nobody wrote by hand. Property names include characters JSON must escape.
 */
final class RandomSchemas {
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
  private static final List<String> NAMES = List.of("id", "name", "a", "ab", "type", "value", "x-y", "naïve", "with space",
      "quote\"d", "back\\slash", "日付", "tab\t", "");
  private static final List<String> FORMATS = List.of("date", "time", "date-time", "uuid", "email", "ipv4", "hostname", "uri");
  private static final List<String> PATTERNS = List.of("^[a-z]{1,8}$", "^(yes|no|maybe)$", "^\\d{3}-\\d{4}$",
      "^[A-F0-9]{2}(:[A-F0-9]{2}){0,3}$", "^[^\"\\\\]{0,5}$", "^.{2}$", "^\\w+(\\.\\w+)?$", "^[\\u00c0-\\u00ff ]{1,4}$");

  private final Random random;

  RandomSchemas(long seed) {
    this.random = new Random(seed);
  }

  /** A schema nested at most {@code depth} deep. */
  ObjectNode next(int depth) {
    int kind = random.nextInt(depth > 0 ? 11 : 7);
    return switch (kind) {
      case 0 -> string();
      case 1 -> integer();
      case 2 -> number();
      case 3 -> NODES.objectNode().put("type", random.nextBoolean() ? "boolean" : "null");
      case 4 -> enumeration();
      case 5 -> nullable(string());
      case 6 -> nullable(integer());
      case 7, 8 -> object(depth - 1);
      case 9 -> array(depth - 1);
      default -> union(depth - 1);
    };
  }

  private ObjectNode string() {
    ObjectNode s = NODES.objectNode().put("type", "string");
    switch (random.nextInt(4)) {
      case 0 -> s.put("format", FORMATS.get(random.nextInt(FORMATS.size())));
      case 1 -> s.put("pattern", PATTERNS.get(random.nextInt(PATTERNS.size())));
      default -> {
        int min = random.nextInt(4);
        if (random.nextBoolean()) {
          s.put("minLength", min);
        }
        s.put("maxLength", min + random.nextInt(12));
      }
    }
    return s;
  }

  private ObjectNode integer() {
    ObjectNode s = NODES.objectNode().put("type", "integer");
    long lo = random.nextInt(2000) - 1000;
    long hi = lo + 1 + random.nextInt(random.nextBoolean() ? 10 : 5000); // exclusive bounds leave one integer at least
    if (random.nextInt(4) > 0) {
      s.put(random.nextBoolean() ? "minimum" : "exclusiveMinimum", lo);
    }
    if (random.nextInt(4) > 0) {
      s.put(random.nextBoolean() ? "maximum" : "exclusiveMaximum", hi + 1);
    }
    return s;
  }

  private ObjectNode number() {
    ObjectNode s = NODES.objectNode().put("type", "number");
    long lo = random.nextInt(200) - 100;
    if (random.nextBoolean()) {
      s.put(random.nextBoolean() ? "minimum" : "exclusiveMinimum", lo);
    }
    if (random.nextBoolean()) {
      s.put(random.nextBoolean() ? "maximum" : "exclusiveMaximum", lo + 1 + random.nextInt(300));
    }
    return s;
  }

  private ObjectNode enumeration() {
    ArrayNode values = NODES.arrayNode();
    int n = 1 + random.nextInt(4);
    for (int i = 0; i < n; i++) {
      switch (random.nextInt(5)) {
        case 0 -> values.add(NAMES.get(random.nextInt(NAMES.size())));
        case 1 -> values.add(random.nextInt(100) - 50);
        case 2 -> values.add(random.nextInt(1000) / 8.0);
        case 3 -> values.addNull();
        default -> values.addObject().put("k", random.nextBoolean());
      }
    }
    if (n == 1 && random.nextBoolean()) {
      return NODES.objectNode().set("const", values.get(0));
    }
    return NODES.objectNode().set("enum", values);
  }

  private ObjectNode nullable(ObjectNode schema) {
    ArrayNode types = NODES.arrayNode().add(schema.get("type").asText()).add("null");
    schema.set("type", types);
    return schema;
  }

  private ObjectNode object(int depth) {
    ObjectNode s = NODES.objectNode().put("type", "object");
    ObjectNode properties = s.putObject("properties");
    ArrayNode required = NODES.arrayNode();
    List<String> names = new ArrayList<>(NAMES);
    java.util.Collections.shuffle(names, random);
    int n = random.nextInt(5);
    for (int i = 0; i < n; i++) {
      properties.set(names.get(i), next(depth));
      if (random.nextBoolean()) {
        required.add(names.get(i));
      }
    }
    if (!required.isEmpty()) {
      s.set("required", required);
    }
    switch (random.nextInt(4)) {
      case 0 -> s.put("additionalProperties", false);
      case 1 -> { } // absent: none either
      case 2 -> s.set("additionalProperties", NODES.objectNode().put("type", "boolean"));
      default -> s.put("additionalProperties", false);
    }
    return s;
  }

  private ObjectNode array(int depth) {
    ObjectNode s = NODES.objectNode().put("type", "array");
    int min = random.nextInt(3);
    if (random.nextInt(3) == 0) {
      ArrayNode prefix = s.putArray("prefixItems");
      int k = 1 + random.nextInt(3);
      for (int i = 0; i < k; i++) {
        prefix.add(next(depth));
      }
      if (random.nextBoolean()) {
        s.set("items", next(depth));
        s.put("maxItems", k + random.nextInt(3));
      }
    } else {
      s.set("items", next(depth));
      if (random.nextBoolean()) {
        s.put("minItems", min);
      }
      s.put("maxItems", min + random.nextInt(4));
    }
    return s;
  }

  private ObjectNode union(int depth) {
    // Branches of different types, so that anyOf and oneOf agree.
    ObjectNode s = NODES.objectNode();
    ArrayNode branches = s.putArray(random.nextBoolean() ? "anyOf" : "oneOf");
    branches.add(object(depth));
    branches.add(random.nextBoolean() ? string() : integer());
    if (random.nextBoolean()) {
      branches.add(NODES.objectNode().put("type", "null"));
    }
    return s;
  }
}
