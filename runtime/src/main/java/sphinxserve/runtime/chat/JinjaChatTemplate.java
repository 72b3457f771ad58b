package sphinxserve.runtime.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.objects.date.StrftimeFormatter;
import java.time.Clock;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import jinjava.javax.el.CompositeELResolver;

/**
 * A Hugging Face {@code chat_template} (the Jinja text in {@code tokenizer_config.json}), rendered as
 * transformers' {@code apply_chat_template} renders it. Immutable and thread-safe.
 */
public final class JinjaChatTemplate {
  /*
   * transformers (chat_template_utils.py, _compile_jinja_template) renders with
   *   ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
   *   globals: raise_exception(msg) -> TemplateError, strftime_now(fmt) -> datetime.now().strftime(fmt)
   *   filters: tojson = json.dumps(ensure_ascii=False, indent=...)
   *   render(messages=[{"role", "content"}], tools=None, documents=None, add_generation_prompt=...,
   *          continue_final_message=False, **special_tokens_map)
   * with Jinja's default Undefined: an unknown name renders as "" and is false, so templates test
   * `tools is defined`, `if tools` and the like freely. jinjava is configured to match:
   *   - trimBlocks/lstripBlocks on; jinjava's legacy fixes (LEGACY_OVERRIDES: natural operator precedence,
   *     strict whitespace-control parsing, evaluated dict-literal keys), and Jinja's precedence of `not`
   *     (JinjaSyntax: `not x is defined` is `not (x is defined)`);
   *   - failOnUnknownTokens OFF: an undefined name is null, which renders "" and is false, as Jinja's Undefined
   *     (and `none`, which jinjava lacks as a literal, resolves to null = None). `True`/`False` are bound
   *     because jinjava only knows lowercase true/false, and an unknown `True` would silently be false;
   *   - Python str methods (strip, split, startswith, title, ...) through PythonMethodResolver in front of
   *     jinjava's own resolvers, since jinjava would otherwise call java.lang.String's methods (or fail);
   *   - `trim` and `tojson` replaced by Python's semantics (str.strip; json.dumps with ", " separators);
   *   - every FATAL error jinjava collects in RenderResult.getErrors() becomes a ChatTemplateException.
   *     jinjava does not throw on most errors; it records them and renders the rest, so an unchecked result
   *     would be a silently truncated prompt.
   * Loop controls ({% break %}/{% continue %}), namespace(), loop.first/last/index0, slicing and `in` are
   * jinjava built-ins.
   *
   * Known gaps (not used by the LLaMA-family templates this serves): Python's rendering of True/None ("True",
   * "None"; jinjava writes "true" and ""), and Python float formatting in tojson.
   */

  /**
   * jinjava's fixes of its legacy behaviour that bring it closer to Jinja, all but one: whitespaceRequiredWithinTokens
   * would make jinjava print {@code {{'<|im_start|>' + ...}}} and {@code {{- bos_token }}} as literal text (no
   * space after {@code {{}), and real templates write both.
   */
  private static final LegacyOverrides LEGACY_OVERRIDES = LegacyOverrides.newBuilder()
      .withEvaluateMapKeys(true)
      .withIterateOverMapKeys(true)
      .withUsePyishObjectMapper(true)
      .withUseSnakeCasePropertyNaming(true)
      .withWhitespaceRequiredWithinTokens(false)
      .withUseNaturalOperatorPrecedence(true)
      .withParseWhitespaceControlStrictly(true)
      .withAllowAdjacentTextNodes(true)
      .withUseTrimmingForNotesAndExpressions(true)
      .withKeepNullableLoopValues(true)
      .build();

  /** Name under which raise_exception's message travels to {@link #render}'s error check. */
  private static final String RAISED_PREFIX = "raise_exception: ";

  private final String sourceName;
  private final String template;
  private final Map<String, Object> variables;
  private final ChatTemplateLimits limits;
  private final Jinjava jinjava;

  private JinjaChatTemplate(String sourceName, String template, Map<String, Object> variables, ChatTemplateLimits limits,
      Jinjava jinjava) {
    this.sourceName = sourceName;
    this.template = template;
    this.variables = variables;
    this.limits = limits;
    this.jinjava = jinjava;
  }

  /**
   * Compiles {@code template}; {@code strftime_now} reads the system clock in the local time zone.
   *
   * @param sourceName where the template came from, for error messages (e.g. a tokenizer_config.json path)
   * @param variables tokenizer_config.json extras the template may read: {@code bos_token}, {@code eos_token},
   *     {@code unk_token}, {@code pad_token} (strings) and the like
   * @throws ChatTemplateException when jinjava finds the template's structure broken (an unclosed block)
   */
  public static JinjaChatTemplate compile(String sourceName, String template, Map<String, Object> variables) {
    return compile(sourceName, template, variables, ChatTemplateLimits.DEFAULTS);
  }

  /** {@link #compile(String, String, Map)} with each render bounded by {@code limits}. */
  public static JinjaChatTemplate compile(String sourceName, String template, Map<String, Object> variables,
      ChatTemplateLimits limits) {
    return compile(sourceName, template, variables, limits, Clock.systemDefaultZone());
  }

  /** {@link #compile(String, String, Map)} with {@code strftime_now} reading {@code clock}. */
  static JinjaChatTemplate compile(String sourceName, String template, Map<String, Object> variables, Clock clock) {
    return compile(sourceName, template, variables, ChatTemplateLimits.DEFAULTS, clock);
  }

  /** {@link #compile(String, String, Map, ChatTemplateLimits)} with {@code strftime_now} reading {@code clock}. */
  static JinjaChatTemplate compile(String sourceName, String template, Map<String, Object> variables,
      ChatTemplateLimits limits, Clock clock) {
    Objects.requireNonNull(sourceName, "sourceName");
    Objects.requireNonNull(template, "template");
    Objects.requireNonNull(limits, "limits");
    Map<String, Object> copy = new LinkedHashMap<>(variables); // values may be null (an unset pad_token)
    CompositeELResolver resolver = new CompositeELResolver();
    resolver.add(new PythonMethodResolver());
    resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
    JinjavaConfig config = TemplateSandbox.configure(JinjavaConfig.newBuilder(), limits)
        .withTrimBlocks(true)
        .withLstripBlocks(true)
        .withFailOnUnknownTokens(false)
        .withLegacyOverrides(LEGACY_OVERRIDES)
        .withElResolver(resolver)
        .withDateTimeProvider(clock::millis)
        .withTimeZone(clock.getZone())
        .withLocale(Locale.ENGLISH)
        .build();
    Jinjava jinjava = JinjaSyntax.engine(config);
    jinjava.getGlobalContext().registerFunction(
        new ELFunctionDefinition("", "raise_exception", JinjaChatTemplate.class, "raiseException", Object.class));
    jinjava.getGlobalContext().registerFunction(
        new ELFunctionDefinition("", "strftime_now", JinjaChatTemplate.class, "strftimeNow", String.class));
    jinjava.getGlobalContext().registerFilter(new TrimFilter());
    jinjava.getGlobalContext().registerFilter(new ToJsonFilter());
    jinjava.getGlobalContext().registerFilter(new ItemsFilter());
    jinjava.getGlobalContext().registerExpTest(new IterableTest());
    TemplateSandbox.install(jinjava);

    JinjavaInterpreter interpreter = jinjava.newInterpreter();
    JinjavaInterpreter.pushCurrent(interpreter);
    try {
      interpreter.parse(template);
    } catch (RuntimeException e) {
      throw new ChatTemplateException(sourceName + ": chat template does not parse: " + e.getMessage(), e);
    } finally {
      JinjavaInterpreter.popCurrent();
    }
    failOnErrors(sourceName, interpreter.getErrors(), "does not parse");
    return new JinjaChatTemplate(sourceName, template, copy, limits, jinjava);
  }

  /** Where the template came from. */
  public String sourceName() {
    return sourceName;
  }

  /** The template text. */
  public String template() {
    return template;
  }

  /** The budgets of each render. */
  public ChatTemplateLimits limits() {
    return limits;
  }

  /** The extra variables given at compile time ({@code bos_token}, ...), unmodifiable. */
  public Map<String, Object> variables() {
    return java.util.Collections.unmodifiableMap(variables);
  }

  /**
   * The prompt text for {@code turns}, without tools.
   *
   * @param addGenerationPrompt whether to end with the template's assistant-turn opener
   * @throws ChatTemplateException when the template raises (its message included), jinjava reports an error or the
   *     render goes past one of its {@link ChatTemplateLimits} ({@link ChatTemplateException#budget()} says which)
   */
  public String render(List<ChatTurn> turns, boolean addGenerationPrompt) {
    return render(turns, null, addGenerationPrompt);
  }

  /**
   * The prompt text for {@code turns} offering {@code tools}, as transformers' {@code apply_chat_template(messages,
   * tools=tools, add_generation_prompt=...)} renders it.
   *
   * @param tools the tool definitions as given (OpenAI's {@code [{"type": "function", "function": {"name",
   *     "description", "parameters"}}]} as JSON-like Maps and Lists), passed to the template unchanged; null when the
   *     request has none (the template sees {@code tools} undefined, as transformers' None)
   * @throws ChatTemplateException as {@link #render(List, boolean)}
   */
  public String render(List<ChatTurn> turns, List<? extends Map<String, ?>> tools, boolean addGenerationPrompt) {
    List<Map<String, Object>> messages = new ArrayList<>(turns.size());
    for (ChatTurn turn : turns) {
      messages.add(message(turn));
    }
    Map<String, Object> bindings = new HashMap<>(variables);
    // Jinja globals are names too: the Llama 3.x templates test `strftime_now is defined` before calling it,
    // and jinjava's functions are not variables. The values only show if a template prints the name itself.
    bindings.put("strftime_now", "<function strftime_now>");
    bindings.put("raise_exception", "<function raise_exception>");
    bindings.put("True", true);
    bindings.put("False", false);
    bindings.put("messages", messages);
    bindings.put("add_generation_prompt", addGenerationPrompt);
    bindings.put("continue_final_message", false);
    if (tools != null) {
      bindings.put("tools", tools);
    }
    // Without tools, tools and documents stay unbound: null, which is what transformers passes (None) for none.
    RenderResult result;
    try (RenderBudget budget = RenderBudget.open(limits, sourceName)) {
      try {
        result = jinjava.renderForResult(template, bindings);
      } catch (RuntimeException | StackOverflowError e) {
        if (budget.spent() != null) {
          throw budget.spent();
        }
        if (e instanceof StackOverflowError) {
          budget.spend(ChatTemplateException.Budget.DEPTH, "the render nests too deeply for the thread's stack");
        }
        throw new ChatTemplateException(sourceName + ": chat template failed: " + e.getMessage(), e);
      }
      if (budget.spent() != null) {
        throw budget.spent(); // jinjava may have recorded our exception as an error and carried on
      }
      failOnBudgetErrors(result.getErrors(), budget);
      failOnErrors(sourceName, result.getErrors(), "failed");
      budget.chars(result.getOutput().length());
      return result.getOutput();
    }
  }

  /** The dict transformers would hand the template for {@code turn}: keys only for what is set. */
  private static Map<String, Object> message(ChatTurn turn) {
    Map<String, Object> message = new LinkedHashMap<>();
    message.put("role", turn.role());
    message.put("content", turn.content());
    if (!turn.toolCalls().isEmpty()) {
      List<Map<String, Object>> calls = new ArrayList<>(turn.toolCalls().size());
      for (ChatTurn.ToolCall call : turn.toolCalls()) {
        Map<String, Object> function = new LinkedHashMap<>();
        function.put("name", call.name());
        function.put("arguments", call.arguments());
        Map<String, Object> entry = new LinkedHashMap<>();
        if (call.id() != null) {
          entry.put("id", call.id());
        }
        entry.put("type", "function");
        entry.put("function", function);
        calls.add(entry);
      }
      message.put("tool_calls", calls);
    }
    if (turn.toolCallId() != null) {
      message.put("tool_call_id", turn.toolCallId());
    }
    if (turn.name() != null) {
      message.put("name", turn.name());
    }
    return message;
  }

  /**
   * jinjava's own limits (output size, string and collection sizes, macro recursion), which it records as errors,
   * reported as the budget they enforce.
   */
  private static void failOnBudgetErrors(List<TemplateError> errors, RenderBudget budget) {
    for (TemplateError error : errors) {
      String message = String.valueOf(error.getMessage());
      if (error.getReason() == TemplateError.ErrorReason.OUTPUT_TOO_BIG || message.contains("OutputTooBigException")) {
        budget.spend(ChatTemplateException.Budget.OUTPUT_CHARS, "more than " + budget.limits().maxOutputChars()
            + " characters of output");
      } else if (error.getReason() == TemplateError.ErrorReason.COLLECTION_TOO_BIG
          || message.contains("CollectionTooBigException")) {
        budget.spend(ChatTemplateException.Budget.ITERATIONS, "a list or dict of more than "
            + budget.limits().maxIterations() + " items");
      } else if (message.contains("Max recursion limit") || message.contains("Max render depth")) {
        budget.spend(ChatTemplateException.Budget.DEPTH, message);
      } else if (overflowedTheStack(error.getException())) {
        // jinjava records a StackOverflowError inside a tag (hashing a namespace that holds itself) and goes on
        budget.spend(ChatTemplateException.Budget.DEPTH, "the render nests too deeply for the thread's stack");
      }
    }
  }

  private static boolean overflowedTheStack(Throwable error) {
    for (Throwable t = error; t != null; t = t.getCause()) {
      if (t instanceof StackOverflowError) {
        return true;
      }
    }
    return false;
  }

  private static void failOnErrors(String sourceName, List<TemplateError> errors, String verb) {
    for (TemplateError error : errors) {
      if (error.getSeverity() != TemplateError.ErrorType.FATAL) {
        continue;
      }
      String raised = raisedMessage(error);
      if (raised != null) {
        throw new ChatTemplateException(sourceName + ": chat template raised: " + raised);
      }
      String line = error.getLineno() > 0 ? " (line " + error.getLineno() + ")" : "";
      throw new ChatTemplateException(sourceName + ": chat template " + verb + line + ": " + error.getMessage());
    }
  }

  /** The message of a raise_exception call, if {@code error} is one. */
  private static String raisedMessage(TemplateError error) {
    for (Throwable t = error.getException(); t != null; t = t.getCause()) {
      if (t instanceof RaisedException raised) {
        return raised.getMessage();
      }
    }
    String message = error.getMessage();
    int at = message == null ? -1 : message.indexOf(RAISED_PREFIX);
    return at < 0 ? null : message.substring(at + RAISED_PREFIX.length());
  }

  /** The template's {@code raise_exception(message)}. */
  static Object raiseException(Object message) {
    throw new RaisedException(String.valueOf(message));
  }

  /** The template's {@code strftime_now(format)}: now, in the configured clock's zone, as Python formats it. */
  static String strftimeNow(String format) {
    JinjavaConfig config = JinjavaInterpreter.getCurrent().getConfig();
    ZonedDateTime now = ZonedDateTime.ofInstant(
        Instant.ofEpochMilli(config.getDateTimeProvider().getCurrentTimeMillis()), config.getTimeZone());
    return StrftimeFormatter.format(now, format, Locale.ENGLISH);
  }

  /** What raise_exception throws; jinjava records it as a FATAL error whose cause chain holds it. */
  private static final class RaisedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    RaisedException(String message) {
      super(RAISED_PREFIX + message, null, false, false);
    }

    @Override
    public String getMessage() {
      return super.getMessage().substring(RAISED_PREFIX.length());
    }
  }

  /** Jinja's {@code trim(chars=None)}: Python's {@code str.strip}, which also strips Unicode spaces. */
  private static final class TrimFilter implements Filter {
    @Override
    public String getName() {
      return "trim";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
      String chars = args.length > 0 ? args[0] : null;
      return var == null ? "" : PythonStrings.strip(var.toString(), chars, true, true);
    }
  }

  /** Jinja's {@code items} filter: a dict's (key, value) pairs, which {@code for k, v in ...} unpacks. */
  private static final class ItemsFilter implements Filter {
    @Override
    public String getName() {
      return "items";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
      if (var == null) {
        return List.of();
      }
      if (!(var instanceof Map<?, ?> map)) {
        throw new ChatTemplateException("items filter: expected a dict, got " + var.getClass().getSimpleName());
      }
      List<Map.Entry<?, ?>> items = new ArrayList<>(map.size());
      for (Map.Entry<?, ?> e : map.entrySet()) {
        items.add(new java.util.AbstractMap.SimpleImmutableEntry<>(e.getKey(), e.getValue()));
      }
      return items;
    }
  }

  /**
   * Jinja's {@code iterable} test: whatever Python can iterate, strings and dicts included (jinjava's counts only
   * Java Iterables and arrays). LLaMA 3.1 writes a tool result as {@code content | tojson} when it {@code is
   * iterable}, so a string result is JSON-quoted there, as in transformers.
   */
  private static final class IterableTest implements ExpTest {
    @Override
    public String getName() {
      return "iterable";
    }

    @Override
    public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
      return var instanceof CharSequence || var instanceof Iterable<?> || var instanceof Map<?, ?>
          || var != null && var.getClass().isArray();
    }
  }

  /** transformers' {@code tojson(indent=None)}: see {@link PythonJson}. */
  private static final class ToJsonFilter implements Filter {
    @Override
    public String getName() {
      return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
      return PythonJson.dumps(var, -1);
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
      Object indent = kwargs.getOrDefault("indent", args.length > 1 ? args[1] : null);
      return PythonJson.dumps(var, indent instanceof Number n ? n.intValue() : -1);
    }
  }
}
