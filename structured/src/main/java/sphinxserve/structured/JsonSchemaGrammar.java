package sphinxserve.structured;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.OptionalLong;

/**
 * JSON Schema (draft-07 and 2020-12 subset) → GBNF text whose language is JSON documents the schema accepts.
 *
 * <p><b>Supported</b>: {@code type} (one or a list), {@code properties}, {@code required},
 * {@code additionalProperties} (false, true or a schema), {@code enum}, {@code const}, {@code items},
 * {@code prefixItems} (and draft-07's {@code items} array with {@code additionalItems}), {@code minItems},
 * {@code maxItems}, {@code uniqueItems: false}, {@code anyOf}, {@code oneOf} (generated as {@code anyOf}: a value
 * matching two branches would fail {@code oneOf}, so keep branches disjoint, as tool schemas do), {@code allOf}
 * of exactly one schema, local {@code $ref} ({@code #}, {@code #/$defs/...}, {@code #/definitions/...}, any
 * local pointer; recursion through rules, but not back to itself before an object or array opens), string
 * {@code minLength}/{@code maxLength}/{@code pattern} (ECMA subset: no back-references, lookaround or inner
 * anchors)/{@code format} ({@code date}, {@code time}, {@code date-time}, {@code uuid}, {@code email},
 * {@code ipv4}, {@code hostname}, {@code uri}, each written conservatively), integer {@code minimum}/
 * {@code maximum}/{@code exclusiveMinimum}/
 * {@code exclusiveMaximum} (any values; draft-04 boolean exclusives too), number bounds when integral.
 * Annotations are skipped: {@code title}, {@code description}, {@code $schema}, {@code $id}, {@code default},
 * {@code examples}, {@code $comment}, {@code deprecated}, {@code readOnly}, {@code writeOnly}. Every other
 * keyword, and every combination the grammar cannot enforce, throws {@link SchemaException} naming the JSON path
 * of the keyword (e.g. {@code #/properties/age/multipleOf}); nothing is silently ignored.
 *
 * <p><b>Policies</b> (as xgrammar and llama.cpp, and as OpenAI's strict mode requires of schemas):
 * <ul>
 *   <li>Properties are written in the order of {@code properties}; required ones always, optional ones may be
 *       left out. {@code additionalProperties} absent means no other property (JSON Schema would allow any);
 *       other properties, when allowed, come after the declared ones, with names that are none of them.
 *   <li>{@code prefixItems} without {@code items} allows no further item; the prefix is always written in full
 *       (up to {@code maxItems}).
 *   <li>{@code {"type": "object"}} without {@code properties}/{@code additionalProperties} is any object,
 *       {@code {"type": "array"}} without {@code items} any array, {@code {}} and {@code true} any value — with
 *       nesting at most {@link #MAX_NESTING} deep.
 *   <li>A schema without {@code type} allows the types its keywords speak of (all, when none does).
 *   <li>Numbers: integral parts of at most 16 digits, fractions of at most 16, exponents of at most 2.
 *   <li>Whitespace between tokens: nothing, one space, or a newline and at most {@link #MAX_INDENT} spaces or
 *       tabs — pretty printing fits, runaway whitespace does not. None before the first token or after the last.
 * </ul>
 *
 * <p><b>Bound</b>: {@link #maxBytes} is the most UTF-8 bytes any document the grammar allows can have, summed over
 * the grammar (sequences add, alternatives take the maximum, {@code {m,n}} multiplies by n, characters count 4
 * bytes raw or 6 as {@code \}{@code uXXXX}). It exists when every string has a {@code maxLength} (or a
 * bounded format/pattern), every array a {@code maxItems} (or a closed tuple), no additional properties are
 * allowed and nothing recurses; then every answer reaches EOS within that many tokens plus one (each token is
 * at least one byte), whatever the model prefers. Numbers are always bounded.
 *
 * <p>Thread-safe: each call converts on its own state. Conversion is linear in the schema (a referenced
 * definition becomes one rule, however often it is used) and refuses schemas nested deeper than 128 levels or
 * grammars over 4 MiB of text.
 */
public final class JsonSchemaGrammar {
  /** Deepest nesting of free JSON values ({@link #anyJson()}, {@code true} schemas). */
  public static final int MAX_NESTING = SchemaTranslator.ANY_DEPTH;

  /** Most spaces/tabs after a newline between two JSON tokens. */
  public static final int MAX_INDENT = SchemaTranslator.MAX_INDENT;

  /** The {@link #anyJson()} grammar, built once. */
  private static final String ANY_JSON = SchemaTranslator.anyObject();

  /**
   * The result of one conversion.
   *
   * @param gbnf the grammar, its start rule first
   * @param start the start rule: {@code root}, or {@code PREFIX-root} from {@link #embed}
   * @param maxBytes the most UTF-8 bytes of any document the grammar allows, when bounded
   */
  public record Conversion(String gbnf, String start, OptionalLong maxBytes) {}

  private JsonSchemaGrammar() {}

  /**
   * Converts a schema.
   *
   * @throws SchemaException naming the path of what is unsupported, malformed or unsatisfiable
   */
  public static Conversion convert(JsonNode schema) {
    if (schema == null || schema.isMissingNode()) {
      throw new SchemaException("#", "no schema");
    }
    return new SchemaTranslator(schema, "").run();
  }

  /**
   * Converts a schema into rules meant to be part of a larger grammar: every rule name starts with
   * {@code prefix + "-"} (helpers included), the start rule is {@code prefix + "-root"} and there is no
   * {@code root}. For grammars around several schemas — a tool call {@code {"name": "f", "arguments": ...}} per
   * function — where each schema keeps its own {@code $ref}s: give each a different prefix and write the
   * enclosing {@code root} yourself, e.g. {@code root ::= "{\"name\": \"f\", \"arguments\": " f-root "}"}.
   *
   * @param prefix lowercase letters, digits and inner dashes, starting with a letter
   * @throws SchemaException as {@link #convert}
   * @throws IllegalArgumentException when the prefix is not a valid rule name
   */
  public static Conversion embed(JsonNode schema, String prefix) {
    if (schema == null || schema.isMissingNode()) {
      throw new SchemaException("#", "no schema");
    }
    if (prefix == null || prefix.isEmpty()) {
      throw new IllegalArgumentException("embed needs a non-empty prefix");
    }
    return new SchemaTranslator(schema, prefix).run();
  }

  /** The GBNF text for {@code schema}; see {@link #convert}. */
  public static String gbnf(JsonNode schema) {
    return convert(schema).gbnf();
  }

  /** {@code schema} as a parsed {@link Grammar}, ready for {@link Grammars#compile}; see {@link #convert}. */
  public static Grammar grammar(JsonNode schema) {
    return Grammar.gbnf(gbnf(schema));
  }

  /** The most UTF-8 bytes of any document {@code schema}'s grammar allows; empty when unbounded. */
  public static OptionalLong maxBytes(JsonNode schema) {
    return convert(schema).maxBytes();
  }

  /** GBNF for OpenAI's {@code json_object}: any JSON object, nested at most {@link #MAX_NESTING} deep. */
  public static String anyJson() {
    return ANY_JSON;
  }
}
