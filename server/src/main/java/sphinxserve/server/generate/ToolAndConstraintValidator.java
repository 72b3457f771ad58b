package sphinxserve.server.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Tool;
import dev.sphinxserve.proto.v1.ToolCall;
import dev.sphinxserve.proto.v1.ToolChoice;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Checks a request's tools, tool choice, tool calls in the conversation and its output constraint: sizes and
 * shapes only (each constraint's own syntax is checked when it is compiled). Every refusal names the field.
 */
final class ToolAndConstraintValidator {

  /** Most tools per request (OpenAI's limit). */
  static final int MAX_TOOLS = 128;
  /** A tool's name: OpenAI's pattern. */
  static final Pattern TOOL_NAME = Pattern.compile("[a-zA-Z0-9_-]{1,64}");
  /** Largest JSON text of one tool's parameters, of one call's arguments, of a JSON Schema or a grammar. */
  static final int MAX_JSON_BYTES = 64 * 1024;
  /** Largest regular expression. */
  static final int MAX_REGEX_CHARS = 4096;
  /** Most strings of a choice, and their total size. */
  static final int MAX_CHOICES = 1024;
  static final int MAX_CHOICE_BYTES = 64 * 1024;

  private static final ObjectMapper JSON = new ObjectMapper();

  private ToolAndConstraintValidator() {}

  /** Checks {@code tools}, {@code tool_choice} and {@code parallel_tool_calls}. */
  static void validateTools(GenerateRequest request) {
    if (request.getToolsCount() > MAX_TOOLS) {
      throw RequestException.invalid("tools", "at most " + MAX_TOOLS + " tools (got " + request.getToolsCount() + ")");
    }
    Set<String> names = new HashSet<>();
    for (int i = 0; i < request.getToolsCount(); i++) {
      Tool tool = request.getTools(i);
      String field = "tools[" + i + "]";
      if (!TOOL_NAME.matcher(tool.getName()).matches()) {
        throw RequestException.invalid(field + ".name", "must be 1 to 64 of a-z, A-Z, 0-9, _ and - (got '" + abbreviate(tool.getName()) + "')");
      }
      if (!names.add(tool.getName())) throw RequestException.invalid(field + ".name", "'" + tool.getName() + "' is defined twice");
      if (!tool.getParameters().isEmpty()) {
        JsonNode parameters = json(tool.getParameters(), field + ".parameters");
        if (!parameters.isObject()) throw RequestException.invalid(field + ".parameters", "must be a JSON Schema object");
      }
    }
    ToolChoice choice = request.getToolChoice();
    switch (choice.getMode()) {
      case AUTO, NONE -> {
        if (!choice.getFunctionName().isEmpty()) {
          throw RequestException.invalid("tool_choice.function_name", "is only allowed with mode FUNCTION");
        }
      }
      case REQUIRED -> {
        if (request.getToolsCount() == 0) throw RequestException.invalid("tool_choice", "REQUIRED needs tools");
      }
      case FUNCTION -> {
        if (!names.contains(choice.getFunctionName())) {
          throw RequestException.invalid("tool_choice.function_name", "'" + abbreviate(choice.getFunctionName()) + "' is not one of the request's tools");
        }
      }
      default -> throw RequestException.invalid("tool_choice.mode", "unknown mode " + choice.getModeValue());
    }
    boolean constrainedTools = choice.getMode() == ToolChoice.Mode.REQUIRED || choice.getMode() == ToolChoice.Mode.FUNCTION;
    if (constrainedTools && request.getSampling().hasConstraint()) {
      throw RequestException.invalid("sampling.constraint", "cannot be combined with tool_choice " + choice.getMode()
          + ", which constrains the answer to tool calls itself");
    }
  }

  /** Checks an ASSISTANT message's {@code tool_calls}; {@code field} is the message's path. */
  static void validateToolCalls(Message m, String field) {
    Set<String> ids = new HashSet<>();
    for (int k = 0; k < m.getToolCallsCount(); k++) {
      ToolCall call = m.getToolCalls(k);
      String cf = field + ".tool_calls[" + k + "]";
      if (call.getId().isEmpty() || call.getId().length() > 128) throw RequestException.invalid(cf + ".id", "must be 1 to 128 characters");
      if (!ids.add(call.getId())) throw RequestException.invalid(cf + ".id", "'" + call.getId() + "' is used twice");
      if (!TOOL_NAME.matcher(call.getName()).matches()) throw RequestException.invalid(cf + ".name", "must be a tool name (a-z, A-Z, 0-9, _, -)");
      JsonNode arguments = json(call.getArguments().isEmpty() ? "{}" : call.getArguments(), cf + ".arguments");
      if (!arguments.isObject()) throw RequestException.invalid(cf + ".arguments", "must be a JSON object");
    }
  }

  /** The ids of the calls in {@code m}. */
  static Set<String> callIds(Message m) {
    Set<String> ids = new HashSet<>();
    for (ToolCall call : m.getToolCallsList()) ids.add(call.getId());
    return ids;
  }

  /** Checks {@code sampling.constraint}'s shape and sizes; {@code ignoreEos} cannot go with one. */
  static void validateConstraint(Constraint c, boolean ignoreEos) {
    String field = "sampling.constraint";
    switch (c.getKindCase()) {
      case KIND_NOT_SET -> throw RequestException.invalid(field, "set one of json_schema, json_object, regex, choice, grammar, grounded");
      case JSON_SCHEMA -> {
        JsonNode schema = json(c.getJsonSchema(), field + ".json_schema");
        if (!schema.isObject() && !schema.isBoolean()) throw RequestException.invalid(field + ".json_schema", "must be a JSON Schema (an object)");
      }
      case JSON_OBJECT -> {
        if (!c.getJsonObject()) throw RequestException.invalid(field + ".json_object", "must be true when set");
      }
      case GROUNDED -> {
        if (!c.getGrounded()) throw RequestException.invalid(field + ".grounded", "must be true when set");
      }
      case REGEX -> {
        if (c.getRegex().isEmpty()) throw RequestException.invalid(field + ".regex", "must not be empty");
        if (c.getRegex().length() > MAX_REGEX_CHARS) {
          throw RequestException.invalid(field + ".regex", "at most " + MAX_REGEX_CHARS + " characters (got " + c.getRegex().length() + ")");
        }
      }
      case CHOICE -> {
        int n = c.getChoice().getValuesCount();
        if (n == 0 || n > MAX_CHOICES) throw RequestException.invalid(field + ".choice.values", "1 to " + MAX_CHOICES + " strings (got " + n + ")");
        long bytes = 0;
        for (int i = 0; i < n; i++) {
          String value = c.getChoice().getValues(i);
          if (value.isEmpty()) throw RequestException.invalid(field + ".choice.values[" + i + "]", "must not be empty");
          bytes += value.getBytes(StandardCharsets.UTF_8).length;
        }
        if (bytes > MAX_CHOICE_BYTES) throw RequestException.invalid(field + ".choice.values", "at most " + MAX_CHOICE_BYTES + " bytes in all (got " + bytes + ")");
      }
      case GRAMMAR -> {
        int bytes = c.getGrammar().getBytes(StandardCharsets.UTF_8).length;
        if (bytes == 0) throw RequestException.invalid(field + ".grammar", "must not be empty");
        if (bytes > MAX_JSON_BYTES) throw RequestException.invalid(field + ".grammar", "at most " + MAX_JSON_BYTES + " bytes (got " + bytes + ")");
      }
    }
    if (ignoreEos) {
      throw RequestException.invalid("sampling.ignore_eos", "cannot be combined with a constraint: a constrained answer ends where it is complete");
    }
  }

  /** {@code text} parsed as JSON, at most {@link #MAX_JSON_BYTES}; INVALID_ARGUMENT on {@code field} otherwise. */
  static JsonNode json(String text, String field) {
    int bytes = text.getBytes(StandardCharsets.UTF_8).length;
    if (bytes > MAX_JSON_BYTES) throw RequestException.invalid(field, "at most " + MAX_JSON_BYTES + " bytes of JSON (got " + bytes + ")");
    try {
      JsonNode node = JSON.readTree(text);
      if (node == null || node.isMissingNode()) throw RequestException.invalid(field, "must be JSON text, got nothing");
      return node;
    } catch (IOException e) {
      throw RequestException.invalid(field, "is not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
    }
  }

  private static String abbreviate(String s) {
    return s.length() <= 80 ? s : s.substring(0, 80) + "...";
  }
}
