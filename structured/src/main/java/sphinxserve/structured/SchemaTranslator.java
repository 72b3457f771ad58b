package sphinxserve.structured;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * One JSON Schema → GBNF conversion (single use, not thread-safe): walks the schema, writing a rule per
 * object, array, union and referenced definition, and refusing what it cannot enforce.
 *
 * <p>Layout of what is produced (xgrammar's and llama.cpp's conventions):
 *
 * <pre>
 *   {ws"a"ws:ws VALUE ws,ws"b"ws:ws VALUE ws}        ws = nothing | " " | "\n" then up to 20 spaces/tabs
 *   [ws VALUE ws,ws VALUE ws]                        no whitespace before the first or after the last token
 * </pre>
 *
 * <p>Policies (documented in {@link JsonSchemaGrammar}): properties in the order of {@code properties}, required
 * ones always, optional ones may be left out; no property beyond {@code properties} unless
 * {@code additionalProperties} says so; no item beyond {@code prefixItems} unless {@code items} says so;
 * {@code oneOf} as {@code anyOf}; a schema without {@code type} takes the types its keywords imply.
 */
final class SchemaTranslator {
  /** Nesting of free JSON values ({@code true} schemas, {@code additionalProperties: true}, json_object). */
  static final int ANY_DEPTH = 16;

  /** Most spaces or tabs after a newline between two JSON tokens (llama.cpp's bound). */
  static final int MAX_INDENT = 20;

  /** Largest {@code maxLength}/{@code maxItems}/{@code minItems}/{@code minLength} accepted as a repetition bound. */
  static final long MAX_REPEAT = 10_000;

  /** Deepest schema nesting followed before refusing (a guard against stack exhaustion). */
  static final int MAX_SCHEMA_DEPTH = 128;

  /** Largest grammar text produced before refusing. */
  static final int MAX_GRAMMAR_CHARS = 4 << 20;

  /** Keywords that never constrain a value: accepted and skipped. */
  static final Set<String> ANNOTATIONS = Set.of("title", "description", "$schema", "$id", "default", "examples",
      "$comment", "deprecated", "readOnly", "writeOnly");

  private static final Set<String> STRUCTURAL = Set.of("$defs", "definitions");
  private static final Set<String> OBJECT_KEYWORDS = Set.of("properties", "required", "additionalProperties");
  private static final Set<String> ARRAY_KEYWORDS = Set.of("items", "prefixItems", "additionalItems", "minItems",
      "maxItems", "uniqueItems");
  private static final Set<String> STRING_KEYWORDS = Set.of("minLength", "maxLength", "pattern", "format");
  private static final Set<String> NUMBER_KEYWORDS = Set.of("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");
  private static final Set<String> COMBINATORS = Set.of("$ref", "allOf", "anyOf", "oneOf", "const", "enum", "type");
  private static final List<String> TYPES = List.of("object", "array", "string", "number", "integer", "boolean", "null");

  private static final ObjectMapper JSON = new ObjectMapper();

  private final JsonNode document;
  private final RuleSet rules;
  /** Rules of referenced definitions, by JSON pointer. */
  private final Map<String, String> refRules = new HashMap<>();
  private int depth;
  /**
   * References entered since the last JSON token the grammar writes ("{" or "["): meeting one of them again would
   * be a rule that derives itself before writing anything (left recursion), a schema no finite value satisfies.
   */
  private Set<String> refsSinceLastToken = new HashSet<>();

  /** A conversion of {@code document} whose rule names start with {@code prefix} (empty: plain names). */
  SchemaTranslator(JsonNode document, String prefix) {
    this.document = document;
    this.rules = new RuleSet(prefix);
  }

  /** The grammar and its byte bound ({@link Fragment#UNBOUNDED} when none). */
  JsonSchemaGrammar.Conversion run() {
    String root = rules.reserve("root");
    refRules.put("#", root);
    refsSinceLastToken.add("#");
    Fragment body = translate(document, "#");
    rules.define(root, body);
    String text = rules.render();
    if (text.length() > MAX_GRAMMAR_CHARS) {
      throw new SchemaException("#", "the grammar for this schema would be " + text.length() + " characters, over the "
          + MAX_GRAMMAR_CHARS + " limit");
    }
    long max = rules.maxBytesOf(root);
    return new JsonSchemaGrammar.Conversion(text, root,
        max == Fragment.UNBOUNDED ? java.util.OptionalLong.empty() : java.util.OptionalLong.of(max));
  }

  /** A grammar of any JSON object nested at most {@link #ANY_DEPTH} deep. */
  static String anyObject() {
    RuleSet rules = new RuleSet();
    String root = rules.reserve("root");
    SchemaTranslator t = new SchemaTranslator(null, "");
    rules.define(root, t.anyObjectAt(rules, ANY_DEPTH));
    return rules.render();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Dispatch

  private Fragment translate(JsonNode schema, String path) {
    if (++depth > MAX_SCHEMA_DEPTH) {
      throw new SchemaException(path, "schema nested deeper than " + MAX_SCHEMA_DEPTH + " levels");
    }
    try {
      return translateChecked(schema, path);
    } finally {
      depth--;
    }
  }

  private Fragment translateChecked(JsonNode schema, String path) {
    if (schema.isBoolean()) {
      if (schema.booleanValue()) {
        return anyValue();
      }
      throw new SchemaException(path, "the schema false allows no value");
    }
    if (!schema.isObject()) {
      throw new SchemaException(path, "a schema must be an object or a boolean");
    }
    checkKeywords(schema, path);
    if (schema.has("$ref")) {
      onlyWith(schema, path, "$ref");
      return reference(schema.get("$ref"), path + "/$ref");
    }
    if (schema.has("allOf")) {
      onlyWith(schema, path, "allOf");
      JsonNode all = schema.get("allOf");
      if (!all.isArray() || all.size() != 1) {
        throw new SchemaException(path + "/allOf", "only an allOf of exactly one schema is supported");
      }
      return translate(all.get(0), path + "/allOf/0");
    }
    for (String union : List.of("anyOf", "oneOf")) {
      if (schema.has(union)) {
        onlyWith(schema, path, union);
        return union(schema.get(union), path + "/" + union);
      }
    }
    if (schema.has("const") || schema.has("enum")) {
      return constants(schema, path);
    }
    List<String> types = types(schema, path);
    List<Fragment> alternatives = new ArrayList<>();
    for (String type : types) {
      alternatives.add(typed(type, schema, path));
    }
    return alternatives.isEmpty() ? anyValue() : Fragment.alt(alternatives);
  }

  private void checkKeywords(JsonNode schema, String path) {
    for (Iterator<String> it = schema.fieldNames(); it.hasNext(); ) {
      String key = it.next();
      if (!(ANNOTATIONS.contains(key) || STRUCTURAL.contains(key) || OBJECT_KEYWORDS.contains(key)
          || ARRAY_KEYWORDS.contains(key) || STRING_KEYWORDS.contains(key) || NUMBER_KEYWORDS.contains(key)
          || COMBINATORS.contains(key))) {
        throw new SchemaException(path + "/" + escapePointer(key), "keyword '" + key + "' is not supported");
      }
    }
  }

  /** Refuses any constraining keyword beside {@code keyword} (annotations and definitions may stay). */
  private static void onlyWith(JsonNode schema, String path, String keyword) {
    for (Iterator<String> it = schema.fieldNames(); it.hasNext(); ) {
      String key = it.next();
      if (!key.equals(keyword) && !ANNOTATIONS.contains(key) && !STRUCTURAL.contains(key)) {
        throw new SchemaException(path + "/" + escapePointer(key),
            "'" + key + "' beside '" + keyword + "' is not supported; move it into the " + keyword + " schema(s)");
      }
    }
  }

  private List<String> types(JsonNode schema, String path) {
    JsonNode type = schema.get("type");
    Set<String> out = new LinkedHashSet<>();
    if (type == null) {
      // No type: the types the keywords speak about (JSON Schema would allow any type; these are a subset).
      if (hasAny(schema, OBJECT_KEYWORDS)) {
        out.add("object");
      }
      if (hasAny(schema, ARRAY_KEYWORDS)) {
        out.add("array");
      }
      if (hasAny(schema, STRING_KEYWORDS)) {
        out.add("string");
      }
      if (hasAny(schema, NUMBER_KEYWORDS)) {
        out.add("number");
      }
      return new ArrayList<>(out);
    }
    List<JsonNode> names = new ArrayList<>();
    if (type.isArray()) {
      type.forEach(names::add);
      if (names.isEmpty()) {
        throw new SchemaException(path + "/type", "an empty list of types allows no value");
      }
    } else {
      names.add(type);
    }
    for (int i = 0; i < names.size(); i++) {
      JsonNode name = names.get(i);
      String at = type.isArray() ? path + "/type/" + i : path + "/type";
      if (!name.isTextual() || !TYPES.contains(name.textValue())) {
        throw new SchemaException(at, "unknown type " + name + " (expected one of " + TYPES + ")");
      }
      out.add(name.textValue());
    }
    if (out.contains("number")) {
      out.remove("integer"); // every integer is a number; keeping both would make the grammar ambiguous
    }
    return new ArrayList<>(out);
  }

  private static boolean hasAny(JsonNode schema, Set<String> keywords) {
    for (String k : keywords) {
      if (schema.has(k)) {
        return true;
      }
    }
    return false;
  }

  private Fragment typed(String type, JsonNode schema, String path) {
    return switch (type) {
      case "null" -> Fragment.literal("null");
      case "boolean" -> rules.shared("json-boolean", () -> Fragment.alt(List.of(Fragment.literal("true"), Fragment.literal("false"))));
      case "string" -> string(schema, path);
      case "integer" -> integer(schema, path);
      case "number" -> number(schema, path);
      case "object" -> afterToken(() -> object(schema, path));
      case "array" -> afterToken(() -> array(schema, path));
      default -> throw new IllegalStateException(type);
    };
  }

  /** Runs {@code inside} (which writes a token before any nested value) with no reference open since a token. */
  private Fragment afterToken(java.util.function.Supplier<Fragment> inside) {
    Set<String> outer = refsSinceLastToken;
    refsSinceLastToken = new HashSet<>();
    try {
      return inside.get();
    } finally {
      refsSinceLastToken = outer;
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // References and unions

  private Fragment reference(JsonNode ref, String path) {
    if (!ref.isTextual()) {
      throw new SchemaException(path, "$ref must be a string");
    }
    String pointer = ref.textValue();
    if (!pointer.equals("#") && !pointer.startsWith("#/")) {
      throw new SchemaException(path, "only local references (#/...) are supported, got '" + pointer + "'");
    }
    if (refsSinceLastToken.contains(pointer)) {
      throw new SchemaException(path, "reference '" + pointer + "' leads back to itself before any value is written: "
          + "no finite JSON value satisfies it");
    }
    String existing = refRules.get(pointer);
    if (existing != null) {
      return new Fragment(existing, rules.maxBytesOf(existing));
    }
    JsonNode target;
    try {
      target = document.at(percentDecode(pointer.substring(1)));
    } catch (IllegalArgumentException e) {
      throw new SchemaException(path, "malformed reference '" + pointer + "'");
    }
    if (target.isMissingNode()) {
      throw new SchemaException(path, "reference '" + pointer + "' points to nothing");
    }
    String[] segments = pointer.split("/");
    String name = rules.reserve("ref-" + segments[segments.length - 1]);
    refRules.put(pointer, name);
    refsSinceLastToken.add(pointer);
    Fragment body;
    try {
      body = translate(target, pointer);
    } finally {
      refsSinceLastToken.remove(pointer);
    }
    rules.define(name, body);
    return new Fragment(name, body.maxBytes());
  }

  private Fragment union(JsonNode branches, String path) {
    if (!branches.isArray() || branches.isEmpty()) {
      throw new SchemaException(path, "must be a non-empty array of schemas");
    }
    List<Fragment> alternatives = new ArrayList<>();
    for (int i = 0; i < branches.size(); i++) {
      alternatives.add(translate(branches.get(i), path + "/" + i));
    }
    return rules.add(hint(path), Fragment.alt(alternatives));
  }

  private Fragment constants(JsonNode schema, String path) {
    for (Iterator<String> it = schema.fieldNames(); it.hasNext(); ) {
      String key = it.next();
      if (!key.equals("const") && !key.equals("enum") && !key.equals("type") && !ANNOTATIONS.contains(key)
          && !STRUCTURAL.contains(key)) {
        throw new SchemaException(path + "/" + escapePointer(key), "'" + key + "' beside const/enum is not supported");
      }
    }
    if (schema.has("const") && schema.has("enum")) {
      throw new SchemaException(path + "/enum", "const and enum together are not supported");
    }
    List<String> types = schema.has("type") ? types(schema, path) : TYPES;
    List<JsonNode> values = new ArrayList<>();
    String at;
    if (schema.has("const")) {
      values.add(schema.get("const"));
      at = path + "/const";
    } else {
      JsonNode e = schema.get("enum");
      at = path + "/enum";
      if (!e.isArray() || e.isEmpty()) {
        throw new SchemaException(at, "must be a non-empty array");
      }
      e.forEach(values::add);
    }
    List<Fragment> literals = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    for (JsonNode value : values) {
      if (value.isFloatingPointNumber() && !value.isBigDecimal() && !Double.isFinite(value.doubleValue())) {
        throw new SchemaException(at, "a number too large for JSON: " + value.asText());
      }
      if (!matchesType(value, types)) {
        continue; // a value of a type the schema excludes can never validate
      }
      String text;
      try {
        text = JSON.writeValueAsString(value);
      } catch (JsonProcessingException e) {
        throw new SchemaException(at, "value cannot be written as JSON: " + e.getOriginalMessage());
      }
      if (seen.add(text)) {
        literals.add(Fragment.literal(text));
      }
    }
    if (literals.isEmpty()) {
      throw new SchemaException(at, "no value is of the schema's type " + types);
    }
    return Fragment.alt(literals);
  }

  private static boolean matchesType(JsonNode value, List<String> types) {
    for (String type : types) {
      boolean match = switch (type) {
        case "null" -> value.isNull();
        case "boolean" -> value.isBoolean();
        case "string" -> value.isTextual();
        case "number" -> value.isNumber();
        case "integer" -> value.isIntegralNumber()
            || (value.isBigDecimal() && value.decimalValue().stripTrailingZeros().scale() <= 0)
            || (value.isFloatingPointNumber() && value.doubleValue() == Math.rint(value.doubleValue()));
        case "object" -> value.isObject();
        case "array" -> value.isArray();
        default -> false;
      };
      if (match) {
        return true;
      }
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Scalars

  private Fragment string(JsonNode schema, String path) {
    long minLength = count(schema, "minLength", path, 0);
    long maxLength = count(schema, "maxLength", path, Fragment.UNBOUNDED);
    if (maxLength != Fragment.UNBOUNDED && maxLength < minLength) {
      throw new SchemaException(path + "/maxLength", "maxLength " + maxLength + " is below minLength " + minLength);
    }
    boolean lengths = schema.has("minLength") || schema.has("maxLength");
    Fragment content;
    if (schema.has("pattern")) {
      if (lengths || schema.has("format")) {
        throw new SchemaException(path + "/" + (schema.has("format") ? "format" : schema.has("minLength") ? "minLength" : "maxLength"),
            "not supported together with pattern (put the length into the pattern, e.g. ^.{1,20}$)");
      }
      JsonNode pattern = schema.get("pattern");
      if (!pattern.isTextual()) {
        throw new SchemaException(path + "/pattern", "must be a string");
      }
      content = PatternGrammar.translate(pattern.textValue(), path + "/pattern");
    } else if (schema.has("format")) {
      if (lengths) {
        throw new SchemaException(path + "/" + (schema.has("minLength") ? "minLength" : "maxLength"),
            "not supported together with format");
      }
      JsonNode format = schema.get("format");
      content = format.isTextual() ? StringGrammar.format(format.textValue(), rules) : null;
      if (content == null) {
        throw new SchemaException(path + "/format", "format " + format + " is not supported (supported: "
            + StringGrammar.FORMATS + ")");
      }
    } else {
      Fragment ch = rules.shared("json-char", StringGrammar::anyChar);
      content = ch.repeat(minLength, maxLength);
      if (!lengths) {
        return rules.shared("json-string", () -> Fragment.seq(Fragment.literal("\""), ch.repeat(0, Fragment.UNBOUNDED), Fragment.literal("\"")));
      }
    }
    return Fragment.seq(Fragment.literal("\""), content, Fragment.literal("\""));
  }

  private Fragment integer(JsonNode schema, String path) {
    if (!hasAny(schema, NUMBER_KEYWORDS)) {
      return rules.shared("json-integer", NumberGrammar::anyInteger);
    }
    BigDecimal[] lower = lowerBound(schema, path);
    BigDecimal[] upper = upperBound(schema, path);
    NumberGrammar.Bound lo = null;
    NumberGrammar.Bound hi = null;
    if (lower != null) {
      BigDecimal v = lower[1].signum() != 0 ? lower[0].setScale(0, RoundingMode.FLOOR).add(BigDecimal.ONE)
          : lower[0].setScale(0, RoundingMode.CEILING);
      lo = new NumberGrammar.Bound(clamp(v), false);
    }
    if (upper != null) {
      BigDecimal v = upper[1].signum() != 0 ? upper[0].setScale(0, RoundingMode.CEILING).subtract(BigDecimal.ONE)
          : upper[0].setScale(0, RoundingMode.FLOOR);
      hi = new NumberGrammar.Bound(clamp(v), false);
    }
    return NumberGrammar.integers(lo, hi).orElseThrow(() -> new SchemaException(path,
        "no integer of at most " + DecimalRanges.MAX_DIGITS + " digits satisfies the bounds"));
  }

  private Fragment number(JsonNode schema, String path) {
    if (!hasAny(schema, NUMBER_KEYWORDS)) {
      return rules.shared("json-number", NumberGrammar::anyNumber);
    }
    BigDecimal[] lower = lowerBound(schema, path);
    BigDecimal[] upper = upperBound(schema, path);
    NumberGrammar.Bound lo = lower == null ? null : integralBound(lower, path);
    NumberGrammar.Bound hi = upper == null ? null : integralBound(upper, path);
    BigDecimal max = BigDecimal.valueOf(DecimalRanges.MAX_MAGNITUDE);
    if (lower != null && lower[0].compareTo(max.negate()) < 0) {
      lo = null; // below every number the grammar writes anyway
    }
    if (upper != null && upper[0].compareTo(max) > 0) {
      hi = null;
    }
    if ((lower != null && lower[0].compareTo(max) > 0) || (upper != null && upper[0].compareTo(max.negate()) < 0)) {
      throw new SchemaException(path, "bounds beyond " + DecimalRanges.MAX_DIGITS + " digits are not supported");
    }
    if (lo == null && hi == null) {
      return rules.shared("json-number", NumberGrammar::anyNumber);
    }
    return NumberGrammar.numbers(lo, hi).orElseThrow(() -> new SchemaException(path, "no number satisfies the bounds"));
  }

  /** A number bound as {@link NumberGrammar.Bound}; refuses non-integral ones, naming the keyword. */
  private static NumberGrammar.Bound integralBound(BigDecimal[] bound, String path) {
    BigDecimal v = bound[0];
    if (v.stripTrailingZeros().scale() > 0) {
      throw new SchemaException(path + "/" + keywordOf(bound),
          "a non-integral bound (" + v.toPlainString() + ") on a number cannot be enforced by a grammar; "
              + "use an integral bound or type integer");
    }
    return new NumberGrammar.Bound(clamp(v), bound[1].signum() != 0);
  }

  /** Which keyword a bound came from; encoded in {@code bound[2]} (0 minimum, 1 exclusiveMinimum, 2 maximum, 3 exclusiveMaximum). */
  private static String keywordOf(BigDecimal[] bound) {
    return List.of("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum").get(bound[2].intValue());
  }

  private static long clamp(BigDecimal v) {
    BigDecimal max = BigDecimal.valueOf(DecimalRanges.MAX_MAGNITUDE);
    if (v.compareTo(max) > 0) {
      return DecimalRanges.MAX_MAGNITUDE + 1;
    }
    if (v.compareTo(max.negate()) < 0) {
      return -DecimalRanges.MAX_MAGNITUDE - 1;
    }
    return v.longValueExact();
  }

  /** The tighter lower bound as {value, exclusive (1/0), keyword index}, or null. */
  private static BigDecimal[] lowerBound(JsonNode schema, String path) {
    return bound(schema, path, "minimum", "exclusiveMinimum", 0, true);
  }

  private static BigDecimal[] upperBound(JsonNode schema, String path) {
    return bound(schema, path, "maximum", "exclusiveMaximum", 2, false);
  }

  private static BigDecimal[] bound(JsonNode schema, String path, String inclusiveKey, String exclusiveKey, int index,
      boolean lower) {
    BigDecimal[] result = null;
    JsonNode inclusive = schema.get(inclusiveKey);
    JsonNode exclusive = schema.get(exclusiveKey);
    if (inclusive != null) {
      BigDecimal v = decimal(inclusive, path + "/" + inclusiveKey);
      boolean draft4Exclusive = exclusive != null && exclusive.isBoolean() && exclusive.booleanValue();
      result = new BigDecimal[] {v, draft4Exclusive ? BigDecimal.ONE : BigDecimal.ZERO,
          BigDecimal.valueOf(draft4Exclusive ? index + 1 : index)};
    }
    if (exclusive != null && !exclusive.isBoolean()) {
      BigDecimal v = decimal(exclusive, path + "/" + exclusiveKey);
      int cmp = result == null ? (lower ? 1 : -1) : v.compareTo(result[0]);
      if (result == null || (lower ? cmp >= 0 : cmp <= 0)) {
        result = new BigDecimal[] {v, BigDecimal.ONE, BigDecimal.valueOf(index + 1)};
      }
    } else if (exclusive != null && exclusive.booleanValue() && inclusive == null) {
      throw new SchemaException(path + "/" + exclusiveKey, "exclusiveMinimum/Maximum true needs minimum/maximum");
    }
    return result;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Objects

  private Fragment object(JsonNode schema, String path) {
    JsonNode properties = schema.get("properties");
    JsonNode additional = schema.get("additionalProperties");
    if (properties == null && additional == null && !schema.has("required")) {
      return anyObjectAt(rules, ANY_DEPTH);
    }
    if (properties != null && !properties.isObject()) {
      throw new SchemaException(path + "/properties", "must be an object");
    }
    Set<String> required = new HashSet<>();
    JsonNode req = schema.get("required");
    if (req != null) {
      if (!req.isArray()) {
        throw new SchemaException(path + "/required", "must be an array of property names");
      }
      for (int i = 0; i < req.size(); i++) {
        JsonNode name = req.get(i);
        if (!name.isTextual()) {
          throw new SchemaException(path + "/required/" + i, "must be a string");
        }
        if (properties == null || !properties.has(name.textValue())) {
          throw new SchemaException(path + "/required/" + i,
              "required property '" + name.textValue() + "' is not declared in properties");
        }
        required.add(name.textValue());
      }
    }
    Fragment ws = ws();
    List<String> names = new ArrayList<>();
    List<Fragment> members = new ArrayList<>();
    if (properties != null) {
      for (Map.Entry<String, JsonNode> property : properties.properties()) {
        String name = property.getKey();
        String at = path + "/properties/" + escapePointer(name);
        if (property.getValue().isBoolean() && !property.getValue().booleanValue()) {
          if (required.contains(name)) {
            throw new SchemaException(at, "required property '" + name + "' has the schema false");
          }
          continue; // may never appear: never written
        }
        names.add(name);
        Fragment value = translate(property.getValue(), at);
        members.add(Fragment.seq(Fragment.literal(jsonString(name)), ws, Fragment.literal(":"), ws, value, ws));
      }
    }
    // What may follow the declared properties: nothing, or more members with undeclared names.
    Fragment tailAfter = Fragment.EMPTY;
    Fragment tailFirst = Fragment.EMPTY;
    if (additional != null && !(additional.isBoolean() && !additional.booleanValue())) {
      Fragment value = translate(additional, path + "/additionalProperties");
      Fragment key = undeclaredKey(names);
      Fragment extra = Fragment.seq(key, ws, Fragment.literal(":"), ws, value, ws);
      tailAfter = rules.add(hint(path) + "-more", Fragment.seq(Fragment.literal(","), ws, extra).repeat(0, Fragment.UNBOUNDED));
      tailFirst = Fragment.seq(extra, tailAfter).optional();
    }
    Fragment body;
    boolean allRequired = names.stream().allMatch(required::contains);
    if (allRequired && !names.isEmpty()) {
      List<Fragment> parts = new ArrayList<>();
      for (int i = 0; i < members.size(); i++) {
        if (i > 0) {
          parts.add(Fragment.literal(","));
          parts.add(ws);
        }
        parts.add(members.get(i));
      }
      parts.add(tailAfter);
      body = Fragment.seq(parts);
    } else {
      // after_i: members i.. once some member was written (each then starts with ","); first_i: members i.. when
      // none was written yet. Required member i: after_i = "," m_i after_{i+1}, first_i = m_i after_{i+1};
      // optional: either that or skipping it (after_{i+1} / first_{i+1}).
      String base = hint(path);
      Fragment after = tailAfter;
      Fragment first = tailFirst;
      for (int i = names.size() - 1; i >= 0; i--) {
        Fragment member = members.get(i);
        Fragment withComma = Fragment.seq(Fragment.literal(","), ws, member, after);
        Fragment withoutComma = Fragment.seq(member, after);
        Fragment newAfter;
        Fragment newFirst;
        if (required.contains(names.get(i))) {
          newAfter = withComma;
          newFirst = withoutComma;
        } else {
          newAfter = Fragment.alt(List.of(withComma, after));
          newFirst = Fragment.alt(List.of(withoutComma, first));
        }
        // after_i is used twice (by after_{i-1} and first_{i-1}), so it becomes a rule; first_i only once.
        after = i > 0 ? rules.add(base + "-after-" + i, newAfter) : newAfter;
        first = newFirst;
      }
      body = first;
    }
    return rules.add(hint(path), Fragment.seq(Fragment.literal("{"), ws, body, Fragment.literal("}")));
  }

  /**
   * A JSON string key, written with raw characters only (so its text is its value), that is none of
   * {@code declared}: a walk down the trie of the declared names, leaving it at any character it does not hold.
   */
  private Fragment undeclaredKey(List<String> declared) {
    Fragment rawChar = new Fragment(Gbnf.charClass(RAW), 4);
    if (declared.isEmpty()) {
      return Fragment.seq(Fragment.literal("\""), rawChar.repeat(0, Fragment.UNBOUNDED), Fragment.literal("\""));
    }
    Trie trie = new Trie();
    declared.forEach(trie::add);
    return Fragment.seq(Fragment.literal("\""), notIn(trie, rawChar), Fragment.literal("\""));
  }

  private static final CodePointSet RAW = CodePointSet.range(0x20, CodePointSet.MAX).minus(CodePointSet.chars("\"\\"));

  /** Raw strings that, read from this trie node, are not a declared name. */
  private Fragment notIn(Trie node, Fragment rawChar) {
    List<Fragment> parts = new ArrayList<>();
    if (!node.terminal) {
      parts.add(Fragment.EMPTY);
    }
    CodePointSet children = CodePointSet.NONE;
    for (Map.Entry<Integer, Trie> child : node.children.entrySet()) {
      if (!RAW.contains(child.getKey())) {
        continue; // a name with a character keys never hold raw cannot be met on this path
      }
      children = children.union(CodePointSet.of(child.getKey()));
      String ch = new String(Character.toChars(child.getKey()));
      parts.add(Fragment.seq(Fragment.literal(ch), notIn(child.getValue(), rawChar)));
    }
    CodePointSet others = RAW.minus(children);
    parts.add(Fragment.seq(new Fragment(Gbnf.charClass(others), 4), rawChar.repeat(0, Fragment.UNBOUNDED)));
    List<Fragment> nonEmpty = parts.stream().filter(p -> !p.equals(Fragment.EMPTY)).toList();
    Fragment alt = Fragment.alt(nonEmpty);
    return node.terminal ? alt : alt.optional();
  }

  private static final class Trie {
    final Map<Integer, Trie> children = new TreeMap<>();
    boolean terminal;

    void add(String word) {
      Trie node = this;
      for (int cp : word.codePoints().toArray()) {
        node = node.children.computeIfAbsent(cp, k -> new Trie());
      }
      node.terminal = true;
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Arrays

  private Fragment array(JsonNode schema, String path) {
    JsonNode uniqueItems = schema.get("uniqueItems");
    if (uniqueItems != null && !(uniqueItems.isBoolean() && !uniqueItems.booleanValue())) {
      throw new SchemaException(path + "/uniqueItems", "uniqueItems true cannot be enforced by a grammar");
    }
    long minItems = count(schema, "minItems", path, 0);
    long maxItems = count(schema, "maxItems", path, Fragment.UNBOUNDED);
    if (maxItems != Fragment.UNBOUNDED && maxItems < minItems) {
      throw new SchemaException(path + "/maxItems", "maxItems " + maxItems + " is below minItems " + minItems);
    }
    JsonNode prefixNode = schema.get("prefixItems");
    JsonNode items = schema.get("items");
    List<JsonNode> prefix = new ArrayList<>();
    String prefixPath;
    JsonNode rest;
    String restPath;
    if (prefixNode != null) {
      if (!prefixNode.isArray()) {
        throw new SchemaException(path + "/prefixItems", "must be an array of schemas");
      }
      if (schema.has("additionalItems")) {
        throw new SchemaException(path + "/additionalItems", "additionalItems goes with an items array, not prefixItems");
      }
      if (items != null && items.isArray()) {
        throw new SchemaException(path + "/items", "items must be a schema beside prefixItems");
      }
      prefixNode.forEach(prefix::add);
      prefixPath = path + "/prefixItems/";
      rest = items; // absent: no items beyond the prefix
      restPath = path + "/items";
    } else if (items != null && items.isArray()) {
      items.forEach(prefix::add); // draft-07 tuple form
      prefixPath = path + "/items/";
      rest = schema.get("additionalItems");
      restPath = path + "/additionalItems";
    } else {
      if (schema.has("additionalItems")) {
        throw new SchemaException(path + "/additionalItems", "additionalItems needs an items array");
      }
      prefixPath = null;
      rest = items == null ? com.fasterxml.jackson.databind.node.BooleanNode.TRUE : items;
      restPath = path + "/items";
    }
    boolean restAllowed = rest != null && !(rest.isBoolean() && !rest.booleanValue());
    long numPrefix = maxItems == Fragment.UNBOUNDED ? prefix.size() : Math.min(prefix.size(), maxItems);
    long restMin = Math.max(0, minItems - numPrefix);
    long restMax = !restAllowed ? 0 : maxItems == Fragment.UNBOUNDED ? Fragment.UNBOUNDED : maxItems - numPrefix;
    if (restMax != Fragment.UNBOUNDED && restMin > restMax) {
      throw new SchemaException(path + "/minItems", "minItems " + minItems + " cannot be met: at most "
          + (numPrefix + restMax) + " items are allowed");
    }
    Fragment ws = ws();
    List<Fragment> parts = new ArrayList<>();
    parts.add(Fragment.literal("["));
    parts.add(ws);
    for (int i = 0; i < numPrefix; i++) {
      if (i > 0) {
        parts.add(Fragment.literal(","));
        parts.add(ws);
      }
      parts.add(translate(prefix.get(i), prefixPath + i));
      parts.add(ws);
    }
    if (restAllowed && (restMax == Fragment.UNBOUNDED || restMax > 0)) {
      Fragment item = translate(rest, restPath);
      Fragment next = Fragment.seq(Fragment.literal(","), ws, item, ws);
      if (numPrefix > 0) {
        parts.add(next.repeat(restMin, restMax));
      } else if (restMin == 0) {
        parts.add(Fragment.seq(item, ws, next.repeat(0, restMax == Fragment.UNBOUNDED ? Fragment.UNBOUNDED : restMax - 1)).optional());
      } else {
        parts.add(Fragment.seq(item, ws, next.repeat(restMin - 1, restMax == Fragment.UNBOUNDED ? Fragment.UNBOUNDED : restMax - 1)));
      }
    }
    parts.add(Fragment.literal("]"));
    return rules.add(hint(path), Fragment.seq(parts));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Free JSON

  /** Any JSON value nested at most {@link #ANY_DEPTH} deep. */
  private Fragment anyValue() {
    return anyValueAt(rules, ANY_DEPTH);
  }

  private Fragment anyValueAt(RuleSet rules, int level) {
    return rules.shared("json-value-" + level, () -> {
      List<Fragment> choices = new ArrayList<>();
      if (level > 0) {
        choices.add(anyObjectAt(rules, level));
        choices.add(rules.shared("json-array-" + level, () -> {
          Fragment ws = ws(rules);
          Fragment inner = anyValueAt(rules, level - 1);
          return Fragment.seq(Fragment.literal("["), ws,
              Fragment.seq(inner, ws, Fragment.seq(Fragment.literal(","), ws, inner, ws).repeat(0, Fragment.UNBOUNDED)).optional(),
              Fragment.literal("]"));
        }));
      }
      Fragment ch = rules.shared("json-char", StringGrammar::anyChar);
      choices.add(rules.shared("json-string", () -> Fragment.seq(Fragment.literal("\""), ch.repeat(0, Fragment.UNBOUNDED), Fragment.literal("\""))));
      choices.add(rules.shared("json-number", NumberGrammar::anyNumber));
      choices.add(rules.shared("json-boolean", () -> Fragment.alt(List.of(Fragment.literal("true"), Fragment.literal("false")))));
      choices.add(Fragment.literal("null"));
      return Fragment.alt(choices);
    });
  }

  /** Any JSON object whose values nest at most {@code level - 1} deeper. */
  private Fragment anyObjectAt(RuleSet rules, int level) {
    return rules.shared("json-object-" + level, () -> {
      Fragment ws = ws(rules);
      Fragment ch = rules.shared("json-char", StringGrammar::anyChar);
      Fragment key = rules.shared("json-string", () -> Fragment.seq(Fragment.literal("\""), ch.repeat(0, Fragment.UNBOUNDED), Fragment.literal("\"")));
      Fragment member = Fragment.seq(key, ws, Fragment.literal(":"), ws, anyValueAt(rules, level - 1), ws);
      return Fragment.seq(Fragment.literal("{"), ws,
          Fragment.seq(member, Fragment.seq(Fragment.literal(","), ws, member).repeat(0, Fragment.UNBOUNDED)).optional(),
          Fragment.literal("}"));
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Helpers

  private Fragment ws() {
    return ws(rules);
  }

  /** Whitespace between two JSON tokens: nothing, one space, or a newline and up to {@link #MAX_INDENT} spaces/tabs. */
  private static Fragment ws(RuleSet rules) {
    return rules.shared("ws", () -> Fragment.alt(List.of(Fragment.literal(" "),
        Fragment.seq(Fragment.literal("\n"), new Fragment("[ \\t]", 1).repeat(0, MAX_INDENT)))).optional());
  }

  /** A non-negative integer keyword, or {@code absent} when missing. */
  private static long count(JsonNode schema, String key, String path, long absent) {
    JsonNode v = schema.get(key);
    if (v == null) {
      return absent;
    }
    BigDecimal value = v.isNumber() ? decimal(v, path + "/" + key) : null;
    if (value == null || value.signum() < 0 || value.stripTrailingZeros().scale() > 0) {
      throw new SchemaException(path + "/" + key, "must be a non-negative integer");
    }
    if (value.compareTo(BigDecimal.valueOf(MAX_REPEAT)) > 0) {
      throw new SchemaException(path + "/" + key, key + " above " + MAX_REPEAT + " is not supported");
    }
    return v.longValue();
  }

  /** Largest decimal exponent accepted in a schema number: past it, rounding alone would be a denial of service. */
  private static final int MAX_DECIMAL_SCALE = 1_000;

  /** A schema keyword's number as a decimal: finite, and of a sane exponent (a rounding never computes 10^huge). */
  private static BigDecimal decimal(JsonNode v, String at) {
    if (!v.isNumber()) {
      throw new SchemaException(at, "must be a number");
    }
    if (v.isFloatingPointNumber() && !v.isBigDecimal() && !Double.isFinite(v.doubleValue())) {
      throw new SchemaException(at, "must be a finite number");
    }
    BigDecimal d = v.decimalValue();
    if (Math.abs((long) d.scale()) > MAX_DECIMAL_SCALE || d.precision() > MAX_DECIMAL_SCALE) {
      throw new SchemaException(at, "number too extreme to enforce: " + v);
    }
    return d;
  }

  /** A rule-name hint for the schema at {@code path}. */
  private static String hint(String path) {
    String p = path.replace("/properties/", "/").replace("/$defs/", "/").replace("/definitions/", "/");
    return "root" + p.substring(1);
  }

  private static String jsonString(String value) {
    try {
      return JSON.writeValueAsString(value);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A URI fragment's {@code %XX} escapes decoded as UTF-8 (a JSON pointer in a {@code $ref}). */
  private static String percentDecode(String fragment) {
    if (fragment.indexOf('%') < 0) {
      return fragment;
    }
    java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    for (int i = 0; i < fragment.length(); ) {
      char c = fragment.charAt(i);
      if (c == '%') {
        if (i + 3 > fragment.length()) {
          throw new IllegalArgumentException("truncated escape");
        }
        bytes.write(Integer.parseInt(fragment.substring(i + 1, i + 3), 16));
        i += 3;
      } else {
        int cp = fragment.codePointAt(i);
        byte[] b = new String(Character.toChars(cp)).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        bytes.write(b, 0, b.length);
        i += Character.charCount(cp);
      }
    }
    return bytes.toString(java.nio.charset.StandardCharsets.UTF_8);
  }

  /** A JSON pointer segment: {@code ~} → {@code ~0}, {@code /} → {@code ~1}. */
  static String escapePointer(String key) {
    return key.replace("~", "~0").replace("/", "~1");
  }
}
