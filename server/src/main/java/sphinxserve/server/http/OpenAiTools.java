package sphinxserve.server.http;

import static sphinxserve.server.http.OpenAiRequests.onlyFields;
import static sphinxserve.server.http.OpenAiRequests.present;

import com.fasterxml.jackson.databind.JsonNode;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateRequestOrBuilder;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Tool;
import dev.sphinxserve.proto.v1.ToolCall;
import dev.sphinxserve.proto.v1.ToolChoice;
import java.util.Set;
import sphinxserve.server.generate.RequestException;

/**
 * OpenAI's tool fields of a chat body as the gRPC request's: {@code tools} (functions: name, description,
 * parameters, strict), {@code tool_choice} ({@code "none"}, {@code "auto"}, {@code "required"} or a named function),
 * {@code parallel_tool_calls}, and an assistant message's {@code tool_calls}. Shapes are checked here with the HTTP
 * field names; names, sizes and schemas by the shared path ({@code ToolAndConstraintValidator}).
 */
final class OpenAiTools {

  /** The body fields read here. */
  static final Set<String> FIELDS = Set.of("tools", "tool_choice", "parallel_tool_calls");

  private OpenAiTools() {}

  /** Sets {@code request}'s tools, tool choice and parallel calls from {@code body}. */
  static void apply(JsonNode body, GenerateRequest.Builder request) {
    JsonNode tools = present(body, "tools");
    if (tools != null) {
      if (!tools.isArray()) throw invalid("tools", "must be an array of {\"type\": \"function\", \"function\": {...}}");
      for (int i = 0; i < tools.size(); i++) request.addTools(tool(tools.get(i), "tools[" + i + "]"));
    }
    JsonNode choice = present(body, "tool_choice");
    if (choice != null) request.setToolChoice(toolChoice(choice, request.getToolsCount() > 0));
    JsonNode parallel = present(body, "parallel_tool_calls");
    if (parallel != null) {
      if (!parallel.isBoolean()) throw invalid("parallel_tool_calls", "must be true or false, got " + parallel);
      request.setParallelToolCalls(parallel.asBoolean());
    }
  }

  /** Whether the answer to {@code request} is parsed for tool calls: it offers tools and may call them. */
  static boolean mayCall(GenerateRequestOrBuilder request) {
    return request.getToolsCount() > 0 && request.getToolChoice().getMode() != ToolChoice.Mode.NONE;
  }

  private static Tool tool(JsonNode tool, String field) {
    if (!tool.isObject()) throw invalid(field, "must be an object {\"type\": \"function\", \"function\": {...}}");
    onlyFields(tool, field, Set.of("type", "function"));
    String type = tool.path("type").asText("");
    if (!type.equals("function")) throw invalid(field + ".type", "must be function (the only kind of tool this node calls), got '" + type + "'");
    JsonNode function = present(tool, "function");
    if (function == null || !function.isObject()) throw invalid(field + ".function", "is required: {\"name\", \"description\", \"parameters\"}");
    String ff = field + ".function";
    onlyFields(function, ff, Set.of("name", "description", "parameters", "strict"));
    JsonNode name = present(function, "name");
    if (name == null || !name.isTextual()) throw invalid(ff + ".name", "is required (a string)");
    Tool.Builder out = Tool.newBuilder().setName(name.asText());
    JsonNode description = present(function, "description");
    if (description != null) {
      if (!description.isTextual()) throw invalid(ff + ".description", "must be a string");
      out.setDescription(description.asText());
    }
    JsonNode parameters = present(function, "parameters");
    if (parameters != null) {
      if (!parameters.isObject()) throw invalid(ff + ".parameters", "must be a JSON Schema object");
      out.setParameters(parameters.toString());
    }
    // strict: calls under "required" or a named function always follow the schema (constrained decoding);
    // under "auto" the model is free and its calls are returned as written, strict or not.
    JsonNode strict = present(function, "strict");
    if (strict != null && !strict.isBoolean()) throw invalid(ff + ".strict", "must be true or false");
    return out.build();
  }

  private static ToolChoice toolChoice(JsonNode choice, boolean hasTools) {
    if (choice.isTextual()) {
      return switch (choice.asText()) {
        case "none" -> ToolChoice.newBuilder().setMode(ToolChoice.Mode.NONE).build();
        case "auto" -> ToolChoice.newBuilder().setMode(ToolChoice.Mode.AUTO).build();
        case "required" -> {
          if (!hasTools) throw invalid("tool_choice", "\"required\" needs tools");
          yield ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED).build();
        }
        default -> throw invalid("tool_choice", "must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}, got '"
            + choice.asText() + "'");
      };
    }
    if (!choice.isObject()) throw invalid("tool_choice", "must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    onlyFields(choice, "tool_choice", Set.of("type", "function"));
    String type = choice.path("type").asText("");
    if (!type.equals("function")) throw invalid("tool_choice.type", "must be function, got '" + type + "'");
    JsonNode name = choice.path("function").path("name");
    if (!name.isTextual()) throw invalid("tool_choice.function.name", "is required (the tool to call)");
    if (!hasTools) throw invalid("tool_choice", "names a function but the request has no tools");
    return ToolChoice.newBuilder().setMode(ToolChoice.Mode.FUNCTION).setFunctionName(name.asText()).build();
  }

  /** An assistant message's {@code tool_calls}: {@code [{id, type: "function", function: {name, arguments}}]}. */
  static void toolCalls(JsonNode calls, String field, Message.Builder out) {
    if (!calls.isArray()) throw invalid(field, "must be an array of {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
    for (int k = 0; k < calls.size(); k++) {
      JsonNode call = calls.get(k);
      String cf = field + "[" + k + "]";
      if (!call.isObject()) throw invalid(cf, "must be an object {\"id\", \"type\": \"function\", \"function\": {...}}");
      onlyFields(call, cf, Set.of("id", "type", "function"));
      JsonNode type = present(call, "type");
      if (type != null && !"function".equals(type.asText())) throw invalid(cf + ".type", "must be function, got " + type);
      JsonNode id = present(call, "id");
      if (id == null || !id.isTextual()) throw invalid(cf + ".id", "is required (a string)");
      JsonNode function = present(call, "function");
      if (function == null || !function.isObject()) throw invalid(cf + ".function", "is required: {\"name\", \"arguments\"}");
      onlyFields(function, cf + ".function", Set.of("name", "arguments"));
      JsonNode name = present(function, "name");
      if (name == null || !name.isTextual()) throw invalid(cf + ".function.name", "is required (a string)");
      JsonNode arguments = present(function, "arguments");
      String text;
      if (arguments == null) {
        text = "{}";
      } else if (arguments.isTextual()) {
        text = arguments.asText(); // OpenAI's form: the JSON text the model wrote
      } else if (arguments.isObject()) {
        text = arguments.toString();
      } else {
        throw invalid(cf + ".function.arguments", "must be the arguments' JSON text (a string)");
      }
      out.addToolCalls(ToolCall.newBuilder().setId(id.asText()).setName(name.asText()).setArguments(text));
    }
  }

  /**
   * {@code description} with the gRPC request's tool fields renamed to OpenAI's: {@code tools[i].name} →
   * {@code tools[i].function.name}, {@code tool_choice.function_name} → {@code tool_choice.function.name},
   * {@code messages[i].tool_calls[k].arguments} → {@code messages[i].tool_calls[k].function.arguments}.
   */
  static String rename(String description) {
    return description
        .replaceFirst("^tools\\[(\\d+)\\]\\.(name|description|parameters)(?=[.\\[:]|$)", "tools[$1].function.$2")
        .replaceFirst("^tool_choice\\.function_name(?=[.\\[:]|$)", "tool_choice.function.name")
        .replaceFirst("^tool_choice\\.mode(?=[.\\[:]|$)", "tool_choice")
        .replaceFirst("^(messages\\[\\d+\\]\\.tool_calls\\[\\d+\\])\\.(name|arguments)(?=[.\\[:]|$)", "$1.function.$2");
  }

  private static RequestException invalid(String field, String problem) {
    return RequestException.invalid(field, problem);
  }
}
