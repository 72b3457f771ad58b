package sphinxserve.server.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Tool;
import dev.sphinxserve.proto.v1.ToolChoice;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.function.Supplier;
import sphinxserve.api.TokenConstraint;
import sphinxserve.structured.CompiledGrammar;
import sphinxserve.structured.Grammar;
import sphinxserve.structured.GrammarException;
import sphinxserve.structured.Grammars;
import sphinxserve.structured.GroundingGrammar;
import sphinxserve.structured.JsonSchemaGrammar;
import sphinxserve.structured.SchemaException;
import sphinxserve.structured.TokenVocabulary;

/**
 * Turns a request's constraint ({@code sampling.constraint}, or its tools under tool_choice REQUIRED/FUNCTION) into
 * the compiled {@link TokenConstraint} the engine applies. Thread-safe; runs on the request's thread, never the
 * engine's.
 *
 * <p>Compiled grammars are cached by the SHA-256 of what defines them (kind and text), in a Caffeine cache that
 * compiles each key once even when many requests ask at once; refusals are cached too, so a schema that fails
 * after its whole compile budget costs that budget once, not once per retry. A compile error is INVALID_ARGUMENT
 * naming the field and where in it ({@code sampling.constraint.json_schema: #/properties/age/multipleOf: ...}).
 */
public final class ConstraintCompiler {

  /** Compiled constraints kept (each holds its own lazily built mask cache, bounded by the structured module). */
  public static final int MAX_CACHED = 64;

  /** Most tool calls one answer may make under tool_choice REQUIRED with parallel calls. */
  static final int MAX_PARALLEL_CALLS = 8;

  private static final ObjectMapper JSON = new ObjectMapper();

  /** A tool without parameters takes no arguments: {@code {}} (not any object). */
  private static final JsonNode NO_ARGUMENTS = JSON.createObjectNode().put("type", "object").put("additionalProperties", false)
      .set("properties", JSON.createObjectNode());

  /** A compiled constraint, or why it was refused. */
  private record Outcome(CompiledGrammar grammar, RequestException refusal) {}

  private final Supplier<TokenVocabulary> vocabulary;
  private final Cache<String, Outcome> cache = Caffeine.newBuilder().maximumSize(MAX_CACHED).recordStats().build();

  /**
   * A compiler over {@code vocabulary}, which is built on first use (a trie over every token's bytes: tens of
   * milliseconds at a 128k vocabulary, paid by the first constrained request, not by every node start).
   */
  public ConstraintCompiler(Supplier<TokenVocabulary> vocabulary) {
    this.vocabulary = memoize(vocabulary);
  }

  /**
   * The constraint {@code request} asks for, compiled: its sampling constraint, or the grammar of calls of its
   * tools when tool_choice is REQUIRED or FUNCTION; null when the answer is free.
   *
   * @param syntax how the model writes tool calls (needed only for the tools' grammar)
   * @throws RequestException INVALID_ARGUMENT naming the field when the constraint cannot be compiled
   */
  public TokenConstraint compile(GenerateRequest request, ToolCallStream.Syntax syntax) {
    ToolChoice.Mode mode = request.getToolChoice().getMode();
    if (mode == ToolChoice.Mode.REQUIRED || mode == ToolChoice.Mode.FUNCTION) {
      return toolCalls(request, syntax);
    }
    if (!request.getSampling().hasConstraint()) return null;
    Constraint c = request.getSampling().getConstraint();
    String field = "sampling.constraint";
    return switch (c.getKindCase()) {
      case JSON_SCHEMA -> cached("json_schema", c.getJsonSchema(), field + ".json_schema",
          () -> Grammar.gbnf(JsonSchemaGrammar.gbnf(ToolAndConstraintValidator.json(c.getJsonSchema(), field + ".json_schema"))));
      case JSON_OBJECT -> cached("json_object", "", field + ".json_object", () -> Grammar.gbnf(JsonSchemaGrammar.anyJson()));
      case REGEX -> cached("regex", c.getRegex(), field + ".regex", () -> Grammar.regex(c.getRegex()));
      case CHOICE -> cached("choice", String.join("\u0000", c.getChoice().getValuesList()), field + ".choice",
          () -> Grammar.choice(c.getChoice().getValuesList()));
      case GRAMMAR -> cached("grammar", c.getGrammar(), field + ".grammar", () -> Grammar.gbnf(c.getGrammar()));
      case GROUNDED -> cached("grounded", "", field + ".grounded", () -> Grammar.gbnf(GroundingGrammar.gbnf()));
      case KIND_NOT_SET -> throw RequestException.invalid(field, "set one of json_schema, json_object, regex, choice, grammar, grounded");
    };
  }

  /**
   * The grammar of an answer that calls the request's tools (the one tool_choice names, or any): each call is
   * {@code {"name": "<tool>", "arguments": <its parameters' JSON>}} ({@code "parameters"} for LLaMA's syntax), written
   * as the templates show it, inside the syntax's markers. Each tool's schema becomes its own rules
   * ({@link JsonSchemaGrammar#embed}, prefixed {@code tool<i>}) so its local {@code $ref}s keep resolving inside it.
   */
  private TokenConstraint toolCalls(GenerateRequest request, ToolCallStream.Syntax syntax) {
    if (syntax == null) throw RequestException.invalid("tool_choice", "this model's chat template has no tool-call syntax the node knows");
    boolean named = request.getToolChoice().getMode() == ToolChoice.Mode.FUNCTION;
    boolean parallel = !named && (!request.hasParallelToolCalls() || request.getParallelToolCalls());
    int maxCalls = parallel && syntax == ToolCallStream.Syntax.HERMES ? MAX_PARALLEL_CALLS : 1;
    String argumentsKey = syntax == ToolCallStream.Syntax.HERMES ? "arguments" : "parameters";
    StringBuilder key = new StringBuilder(syntax + "/" + maxCalls + "/" + request.getToolChoice().getFunctionName());
    for (Tool tool : request.getToolsList()) key.append('\u0000').append(tool.getName()).append('\u0000').append(tool.getParameters());
    return cached("tools", key.toString(), "tools", () -> {
      StringBuilder rules = new StringBuilder();
      StringBuilder calls = new StringBuilder("call ::= ");
      int numCalls = 0;
      for (int i = 0; i < request.getToolsCount(); i++) {
        Tool tool = request.getTools(i);
        if (named && !tool.getName().equals(request.getToolChoice().getFunctionName())) continue;
        String field = "tools[" + i + "].parameters";
        JsonNode parameters = tool.getParameters().isEmpty() ? NO_ARGUMENTS : ToolAndConstraintValidator.json(tool.getParameters(), field);
        JsonSchemaGrammar.Conversion arguments;
        try {
          arguments = JsonSchemaGrammar.embed(parameters, "tool" + i);
        } catch (SchemaException e) {
          throw RequestException.invalid(field, e.getMessage());
        }
        rules.append(arguments.gbnf()).append('\n');
        // Tool names are [a-zA-Z0-9_-]: nothing to escape in a GBNF literal or a JSON string.
        calls.append(numCalls++ == 0 ? "" : " | ").append("\"{\\\"name\\\": \\\"").append(tool.getName())
            .append("\\\", \\\"").append(argumentsKey).append("\\\": \" ").append(arguments.start()).append(" \"}\"");
      }
      String root = switch (syntax) {
        case HERMES -> "root ::= \"<tool_call>\\n\" call \"\\n</tool_call>\"" + (maxCalls > 1
            ? " (\"\\n<tool_call>\\n\" call \"\\n</tool_call>\"){0," + (maxCalls - 1) + "}" : "");
        case LLAMA_JSON -> "root ::= call";
      };
      return Grammar.gbnf(root + "\n" + calls + "\n" + rules);
    });
  }

  /** The compiled grammar for (kind, text), from the cache or built by {@code build}; refusals name {@code field}. */
  private TokenConstraint cached(String kind, String text, String field, Supplier<Grammar> build) {
    Outcome outcome = cache.get(key(kind, text), k -> {
      try {
        return new Outcome(Grammars.compile(build.get(), vocabulary.get()), null);
      } catch (SchemaException e) {
        return new Outcome(null, RequestException.invalid(field, e.getMessage())); // the message starts with the schema path
      } catch (GrammarException e) {
        return new Outcome(null, RequestException.invalid(field, e.getMessage()));
      } catch (RequestException e) {
        return new Outcome(null, e);
      }
    });
    if (outcome.refusal() != null) throw outcome.refusal();
    return outcome.grammar();
  }

  /** Cache hits and misses, for tests and metrics. */
  public com.github.benmanes.caffeine.cache.stats.CacheStats stats() {
    return cache.stats();
  }

  private static String key(String kind, String text) {
    try {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      sha.update(kind.getBytes(StandardCharsets.UTF_8));
      sha.update((byte) 0);
      sha.update(text.getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(sha.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static <T> Supplier<T> memoize(Supplier<T> supplier) {
    return new Supplier<>() {
      private volatile T value;

      @Override
      public T get() {
        T v = value;
        if (v == null) {
          synchronized (this) {
            v = value;
            if (v == null) value = v = supplier.get();
          }
        }
        return v;
      }
    };
  }
}
