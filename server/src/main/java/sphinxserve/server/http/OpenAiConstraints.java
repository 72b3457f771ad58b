package sphinxserve.server.http;

import static sphinxserve.server.http.OpenAiRequests.onlyFields;
import static sphinxserve.server.http.OpenAiRequests.present;

import com.fasterxml.jackson.databind.JsonNode;
import dev.sphinxserve.proto.v1.Choices;
import dev.sphinxserve.proto.v1.Constraint;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import sphinxserve.server.generate.RequestException;

/**
 * What an OpenAI-style body asks its answer to be, as the gRPC {@code sampling.constraint}: OpenAI's
 * {@code response_format} (chat only), vLLM's {@code structured_outputs} object and its older top-level
 * {@code guided_*} fields. At most one constraint per request. The result also says which HTTP field each of the
 * constraint's gRPC fields came from, so a compile error ({@code sampling.constraint.json_schema: #/...}) is reported
 * on the field the client sent ({@code response_format.json_schema.schema}).
 */
final class OpenAiConstraints {

  /** The body fields read here; {@code response_format} only on chat. */
  static final Set<String> FIELDS = Set.of("response_format", "structured_outputs", "guided_json", "guided_regex",
      "guided_choice", "guided_grammar");

  /** Where the gRPC constraint lives; every name below is a field under it. */
  private static final String GRPC = "sampling.constraint";

  /**
   * A constraint asked for, and its fields' HTTP names.
   *
   * @param constraint the gRPC constraint; null for a free answer
   * @param fieldNames gRPC field (or field prefix) → the HTTP field it came from
   */
  record Asked(Constraint constraint, Map<String, String> fieldNames) {
    static final Asked NONE = new Asked(null, Map.of());

    Asked {
      fieldNames = Map.copyOf(fieldNames);
    }
  }

  private OpenAiConstraints() {}

  /** The constraint {@code body} asks for; 400 naming the field when it is malformed or asks for two. */
  static Asked of(JsonNode body, boolean chat) {
    List<Asked> asked = new ArrayList<>(1);
    List<String> from = new ArrayList<>(1);
    if (chat) add(asked, from, "response_format", responseFormat(present(body, "response_format")));
    add(asked, from, "structured_outputs", structuredOutputs(present(body, "structured_outputs")));
    add(asked, from, "guided_json", json(present(body, "guided_json"), "guided_json"));
    add(asked, from, "guided_regex", regex(present(body, "guided_regex"), "guided_regex"));
    add(asked, from, "guided_choice", choice(present(body, "guided_choice"), "guided_choice"));
    add(asked, from, "guided_grammar", grammar(present(body, "guided_grammar"), "guided_grammar"));
    return asked.isEmpty() ? Asked.NONE : asked.getFirst();
  }

  private static void add(List<Asked> asked, List<String> from, String field, Asked one) {
    if (one == null) return;
    if (!asked.isEmpty()) {
      throw invalid(field, "cannot be combined with " + from.getFirst() + ": a request asks for one kind of structured output");
    }
    asked.add(one);
    from.add(field);
  }

  /** OpenAI's {@code response_format}: text (no constraint), json_object, json_schema. */
  private static Asked responseFormat(JsonNode format) {
    if (format == null) return null;
    if (!format.isObject()) throw invalid("response_format", "must be an object such as {\"type\": \"json_object\"}");
    String type = format.path("type").asText("");
    return switch (type) {
      case "text" -> {
        onlyFields(format, "response_format", Set.of("type"));
        yield null;
      }
      case "json_object" -> {
        onlyFields(format, "response_format", Set.of("type"));
        yield new Asked(Constraint.newBuilder().setJsonObject(true).build(), Map.of(GRPC + ".json_object", "response_format", GRPC, "response_format"));
      }
      case "json_schema" -> {
        onlyFields(format, "response_format", Set.of("type", "json_schema"));
        JsonNode spec = present(format, "json_schema");
        String field = "response_format.json_schema";
        if (spec == null || !spec.isObject()) throw invalid(field, "is required with type json_schema: {\"name\", \"schema\", \"strict\"}");
        onlyFields(spec, field, Set.of("name", "schema", "strict", "description"));
        JsonNode name = present(spec, "name");
        if (name != null && !name.isTextual()) throw invalid(field + ".name", "must be a string");
        JsonNode description = present(spec, "description");
        if (description != null && !description.isTextual()) throw invalid(field + ".description", "must be a string");
        JsonNode strict = present(spec, "strict"); // always strict here: the answer can only be what the schema accepts
        if (strict != null && !strict.isBoolean()) throw invalid(field + ".strict", "must be true or false");
        JsonNode schema = present(spec, "schema");
        if (schema == null) throw invalid(field + ".schema", "is required: the JSON Schema the answer must follow");
        if (!schema.isObject() && !schema.isBoolean()) throw invalid(field + ".schema", "must be a JSON Schema (an object)");
        yield new Asked(Constraint.newBuilder().setJsonSchema(schema.toString()).build(),
            Map.of(GRPC + ".json_schema", field + ".schema", GRPC, "response_format"));
      }
      default -> throw invalid("response_format.type", "must be text, json_object or json_schema, got '" + type + "'");
    };
  }

  /** vLLM's {@code structured_outputs}: one of json, regex, choice, grammar, json_object (and this node's grounded). */
  private static Asked structuredOutputs(JsonNode so) {
    if (so == null) return null;
    String field = "structured_outputs";
    if (!so.isObject()) throw invalid(field, "must be an object such as {\"choice\": [\"yes\", \"no\"]}");
    onlyFields(so, field, Set.of("json", "regex", "choice", "grammar", "json_object", "grounded"));
    List<Asked> asked = new ArrayList<>(1);
    List<String> from = new ArrayList<>(1);
    add(asked, from, field + ".json", json(present(so, "json"), field + ".json"));
    add(asked, from, field + ".regex", regex(present(so, "regex"), field + ".regex"));
    add(asked, from, field + ".choice", choice(present(so, "choice"), field + ".choice"));
    add(asked, from, field + ".grammar", grammar(present(so, "grammar"), field + ".grammar"));
    add(asked, from, field + ".json_object", flag(present(so, "json_object"), field + ".json_object", Constraint.newBuilder().setJsonObject(true)));
    add(asked, from, field + ".grounded", flag(present(so, "grounded"), field + ".grounded", Constraint.newBuilder().setGrounded(true)));
    if (asked.isEmpty()) throw invalid(field, "set one of json, regex, choice, grammar, json_object, grounded");
    Asked one = asked.getFirst();
    Map<String, String> names = new HashMap<>(one.fieldNames());
    names.put(GRPC, field);
    return new Asked(one.constraint(), names);
  }

  /** A JSON Schema given as an object or as JSON text (vLLM takes both). */
  private static Asked json(JsonNode schema, String field) {
    if (schema == null) return null;
    String text;
    if (schema.isObject() || schema.isBoolean()) {
      text = schema.toString();
    } else if (schema.isTextual()) {
      text = schema.asText();
    } else {
      throw invalid(field, "must be a JSON Schema (an object, or its JSON text)");
    }
    return new Asked(Constraint.newBuilder().setJsonSchema(text).build(), Map.of(GRPC + ".json_schema", field, GRPC, field));
  }

  private static Asked regex(JsonNode regex, String field) {
    if (regex == null) return null;
    if (!regex.isTextual()) throw invalid(field, "must be a regular expression (a string)");
    return new Asked(Constraint.newBuilder().setRegex(regex.asText()).build(), Map.of(GRPC + ".regex", field, GRPC, field));
  }

  private static Asked choice(JsonNode choice, String field) {
    if (choice == null) return null;
    if (!choice.isArray()) throw invalid(field, "must be an array of strings");
    Choices.Builder values = Choices.newBuilder();
    for (int i = 0; i < choice.size(); i++) {
      if (!choice.get(i).isTextual()) throw invalid(field + "[" + i + "]", "must be a string");
      values.addValues(choice.get(i).asText());
    }
    return new Asked(Constraint.newBuilder().setChoice(values).build(), Map.of(GRPC + ".choice.values", field, GRPC, field));
  }

  private static Asked grammar(JsonNode grammar, String field) {
    if (grammar == null) return null;
    if (!grammar.isTextual()) throw invalid(field, "must be a grammar in GBNF (a string)");
    return new Asked(Constraint.newBuilder().setGrammar(grammar.asText()).build(), Map.of(GRPC + ".grammar", field, GRPC, field));
  }

  /** A boolean kind ({@code json_object}, {@code grounded}): true asks for it, false is absent. */
  private static Asked flag(JsonNode value, String field, Constraint.Builder constraint) {
    if (value == null) return null;
    if (!value.isBoolean()) throw invalid(field, "must be true or false");
    return value.asBoolean() ? new Asked(constraint.build(), Map.of(GRPC, field)) : null;
  }

  private static RequestException invalid(String field, String problem) {
    return RequestException.invalid(field, problem);
  }
}
