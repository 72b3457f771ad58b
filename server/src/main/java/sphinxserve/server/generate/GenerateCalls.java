package sphinxserve.server.generate;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.ToolChoice;
import io.grpc.Status;
import io.opentelemetry.api.trace.Span;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TokenConstraint;
import sphinxserve.server.auth.Tenant;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.image.EncodedImage;
import sphinxserve.server.image.ImageCache;
import sphinxserve.server.image.ImageRejectedException;
import sphinxserve.server.telemetry.RequestTelemetry;

/**
 * The Generate request path both protocols share (gRPC's {@code grpc.SphinxService} and the OpenAI-compatible HTTP
 * API): each is a thin adapter that turns its request into a {@link GenerateRequest} and its stream into a
 * {@link GenerationSink}, then calls {@link #start} (or {@link #startChoices} for OpenAI's {@code n} choices of one
 * prompt).
 *
 * <p>In order, failing fast and cheaply: (1) field validation ({@link RequestValidator}); (2) prompt rendering and
 * the context and tenant checks, before any image work, since they only need the image's token count; (3) the
 * image: bytes go through the {@link ImageCache} (single flight, batched encoding), a digest must already be held
 * (NOT_FOUND otherwise); (4) {@link GenerationBackend#submit}. Steps 3–4 run when the image future completes, so no
 * caller's thread waits for the encoder. Every outcome, errors included, ends in the sink.
 */
public final class GenerateCalls {

  private final ModelSpec spec;
  private final PromptRenderer renderer;
  private final ConstraintCompiler constraints;
  private final ImageCache images;
  private final GenerationBackend backend;
  private final NodeConfig config;

  public GenerateCalls(ModelSpec spec, PromptRenderer renderer, ConstraintCompiler constraints, ImageCache images,
      GenerationBackend backend, NodeConfig config) {
    this.spec = spec;
    this.renderer = renderer;
    this.constraints = constraints;
    this.images = images;
    this.backend = backend;
    this.config = config;
  }

  /**
   * Starts {@code request} for {@code tenant}; its output, or the status refusing it, goes to {@code sink}. The
   * caller aborts it ({@link GenerationBackend#abort}) when its client goes away.
   *
   * @param arrival when the request arrived ({@link System#nanoTime})
   * @param deadlineNanos when it must end ({@link System#nanoTime} scale), {@link Long#MAX_VALUE} for never
   */
  public void start(GenerateRequest request, Tenant tenant, long arrival, long deadlineNanos, RequestTelemetry telemetry,
      GenerationSink sink) {
    startChoices(List.of(request), tenant, arrival, deadlineNanos, telemetry, List.of(sink));
  }

  /**
   * Starts several choices of one prompt (OpenAI's {@code n}): {@code choices} are equal but for their sampling, and
   * choice i's output goes to {@code sinks.get(i)}. The prompt is validated, rendered and its image prepared once.
   * The first choice is submitted at once and the others when its prompt has been computed (its first token): its
   * full KV blocks are then in the prefix cache, so the others compute only what is past them. Submitted together,
   * each would compute the whole prompt, since the prefix cache holds only computed blocks. A prompt shorter than a
   * block has nothing to share; its choices are submitted together. The caller aborts each sink it has given.
   */
  public void startChoices(List<GenerateRequest> choices, Tenant tenant, long arrival, long deadlineNanos, RequestTelemetry telemetry,
      List<GenerationSink> sinks) {
    if (choices.isEmpty() || choices.size() != sinks.size()) {
      throw new IllegalArgumentException(choices.size() + " choices for " + sinks.size() + " sinks");
    }
    String imageField = "image";
    String scope = tenant.cacheScope(config.shareCaches());
    GenerateRequest request = choices.getFirst();
    try {
      RequestValidator.Valid valid = RequestValidator.validate(request, config.maxTurns(), config.maxPromptChars());
      for (GenerateRequest other : choices.subList(1, choices.size())) {
        if (other.hasSampling()) RequestValidator.validateSampling(other.getSampling()); // the prompt is the first's
      }
      telemetry.requestId(valid.requestId());
      RequestValidator.ImageRef ref = valid.image();
      if (ref != null && !spec.acceptsImages()) throw RequestException.invalid(ref.field(), "this model is text-only and takes no images");
      for (GenerateRequest choice : choices) checkLogitBias(choice);
      checkToolsSupported(request);
      // tool_choice NONE: the tools are not shown, so the model is not told it may call them.
      List<dev.sphinxserve.proto.v1.Tool> shownTools = request.getToolChoice().getMode() == ToolChoice.Mode.NONE ? List.of() : request.getToolsList();
      int[] prompt = request.getPromptTokenIdsCount() > 0 ? rawPrompt(request) : renderer.render(request.getMessagesList(), shownTools, ref != null);
      int[] maxNewTokens = new int[choices.size()];
      for (int i = 0; i < choices.size(); i++) maxNewTokens[i] = maxNewTokens(choices.get(i), prompt.length, ref != null, tenant);
      // The choices differ only in sampling seeds: one constraint and one tool-call syntax serve them all.
      ToolCallStream.Syntax toolCallSyntax = request.getToolsCount() > 0 && request.getToolChoice().getMode() != ToolChoice.Mode.NONE
          ? renderer.toolCallSyntax() : null;
      TokenConstraint constraint = constraints.compile(request, toolCallSyntax);
      if (ref != null && ref.content().getKindCase() == Content.KindCase.IMAGE) {
        checkTenantImageBytes(tenant, ref.field() + ".image", ref.content().getImage().size());
      }
      CompletableFuture<PreparedRequest.ImageInput> image;
      if (ref == null) {
        image = CompletableFuture.completedFuture(null);
      } else if (ref.content().getKindCase() == Content.KindCase.IMAGE) {
        imageField = ref.field() + ".image";
        Span span = telemetry.imageStarted();
        CompletableFuture<ImageCache.Result> put;
        try {
          put = images.put(scope, ref.content().getImage().toByteArray());
        } catch (ImageRejectedException e) {
          telemetry.imageDone(span, false, e);
          throw e;
        }
        image = put.whenComplete((r, error) -> telemetry.imageDone(span, r != null && r.cacheHit(), error))
            .thenApply(r -> new PreparedRequest.ImageInput(r.image().embeddings(), PromptRenderer.IMAGE_START, r.cacheHit()));
      } else {
        String digest = ref.content().getImageDigest();
        Span span = telemetry.imageStarted();
        Optional<CompletableFuture<EncodedImage>> found = images.lookup(scope, digest);
        if (found.isEmpty()) telemetry.imageDone(span, false, null);
        CompletableFuture<EncodedImage> held = found.orElseThrow(() -> RequestException.notFound(
            ref.field() + ".image_digest", "image " + digest + " is not held by this node; resend the image bytes (content.image) or PutImage it first"));
        image = held.whenComplete((e, error) -> telemetry.imageDone(span, true, error))
            .thenApply(e -> new PreparedRequest.ImageInput(e.embeddings(), PromptRenderer.IMAGE_START, true));
      }
      String field = imageField;
      image.whenComplete((input, error) -> {
        if (error != null) {
          failAll(sinks, Statuses.of(error, field));
          return;
        }
        List<PreparedRequest> prepared = new ArrayList<>(choices.size());
        for (int i = 0; i < choices.size(); i++) {
          prepared.add(new PreparedRequest(valid.requestId(), prompt, Optional.ofNullable(input), choices.get(i).getSampling(),
              maxNewTokens[i], request.getPriority(), arrival, deadlineNanos, tenant.tenantSalt(config.shareCaches()), telemetry, null,
              constraint, toolCallSyntax));
        }
        if (prepared.size() == 1 || prompt.length < config.kvBlockSize()) {
          for (int i = 0; i < prepared.size(); i++) submit(prepared.get(i), sinks.get(i));
        } else {
          // The others wait for the first's prompt blocks; run on the engine thread, where submitting only enqueues.
          Runnable others = () -> {
            for (int i = 1; i < prepared.size(); i++) submit(prepared.get(i), sinks.get(i));
          };
          submit(prepared.getFirst().withOnPrefilled(others), sinks.getFirst());
        }
      });
    } catch (RequestException | ImageRejectedException e) {
      failAll(sinks, Statuses.of(e, imageField));
    } catch (RuntimeException e) {
      failAll(sinks, internal(e));
    }
  }

  /** How the model writes tool calls (the chat template's syntax or {@code --tool-call-format}'s); null when none. */
  public ToolCallStream.Syntax toolCallSyntax() {
    return renderer.toolCallSyntax();
  }

  /** Submits {@code request} unless its client is gone; a stream must end with a status, never hang on a failed callback. */
  private void submit(PreparedRequest request, GenerationSink sink) {
    try {
      if (!sink.isCancelled()) backend.submit(request, sink);
    } catch (RuntimeException e) {
      sink.fail(internal(e));
    }
  }

  /** Tools, tool calls and tool results need a chat template that takes them; SPHINX's fixed form does not. */
  private void checkToolsSupported(GenerateRequest request) {
    if (spec.template().isJinja()) return;
    String why = "this model's template (SPHINX's fixed form) takes no tools";
    if (request.getToolsCount() > 0) throw RequestException.invalid("tools", why);
    if (request.getToolChoice().getMode() != ToolChoice.Mode.AUTO) throw RequestException.invalid("tool_choice", why);
    for (int i = 0; i < request.getMessagesCount(); i++) {
      var m = request.getMessages(i);
      if (m.getToolCallsCount() > 0) throw RequestException.invalid("messages[" + i + "].tool_calls", why);
      if (m.getRole() == dev.sphinxserve.proto.v1.Role.TOOL) throw RequestException.invalid("messages[" + i + "].role", why);
    }
  }

  private static void failAll(List<GenerationSink> sinks, Status status) {
    for (GenerationSink sink : sinks) sink.fail(status);
  }

  /** Tokens {@code request} may generate after a prompt of {@code numPromptTokens}: its own, the tenant's and the context's limits. */
  private int maxNewTokens(GenerateRequest request, int numPromptTokens, boolean withImage, Tenant tenant) {
    int contextMaxTokens = checkContext(numPromptTokens, withImage, request);
    int tenantMaxTokens = tenant.limits().maxTokens();
    if (tenantMaxTokens > 0) {
      if (Integer.compareUnsigned(request.getSampling().getMaxTokens(), tenantMaxTokens) > 0) {
        throw RequestException.invalid("sampling.max_tokens", "at most " + tenantMaxTokens + " for tenant " + tenant.name()
            + " (max-tokens), got " + Integer.toUnsignedString(request.getSampling().getMaxTokens()));
      }
    }
    // max_tokens 0: the tenant's cap, not the whole context
    return tenantMaxTokens > 0 ? Math.min(contextMaxTokens, tenantMaxTokens) : contextMaxTokens;
  }

  /** {@code prompt_token_ids} as the prompt, every id inside the vocabulary (an id past it would address image rows). */
  private int[] rawPrompt(GenerateRequest request) {
    int[] ids = new int[request.getPromptTokenIdsCount()];
    for (int i = 0; i < ids.length; i++) {
      int id = request.getPromptTokenIds(i);
      if (id < 0 || id >= spec.vocabSize()) {
        throw RequestException.invalid("prompt_token_ids[" + i + "]", Integer.toUnsignedString(id) + " is outside the vocabulary of " + spec.vocabSize());
      }
      ids[i] = id;
    }
    return ids;
  }

  /** Every {@code sampling.logit_bias} id inside the vocabulary (the engine would ignore one past it, silently). */
  private void checkLogitBias(GenerateRequest request) {
    for (int id : request.getSampling().getLogitBiasMap().keySet()) {
      if (id >= spec.vocabSize()) {
        throw RequestException.invalid("sampling.logit_bias." + id, id + " is outside the vocabulary of " + spec.vocabSize());
      }
    }
  }

  public static Status internal(RuntimeException e) {
    return Status.INTERNAL.withDescription("the request failed inside the node: " + e).withCause(e);
  }

  /** Refuses an image over the tenant's {@code max-image-bytes} with INVALID_ARGUMENT naming {@code field}. */
  public static void checkTenantImageBytes(Tenant tenant, String field, int numBytes) {
    long max = tenant.limits().maxImageBytes();
    if (max > 0 && numBytes > max) {
      throw RequestException.invalid(field, numBytes + " bytes, at most " + max + " for tenant " + tenant.name() + " (max-image-bytes)");
    }
  }

  /** Checks that the prompt and the requested tokens fit the context; returns the tokens to generate at most. */
  private int checkContext(int numPromptTokens, boolean withImage, GenerateRequest request) {
    int context = spec.maxContextTokens();
    if (numPromptTokens >= context) {
      throw RequestException.invalid(request.getPromptTokenIdsCount() > 0 ? "prompt_token_ids" : "messages", "the prompt takes " + numPromptTokens + " tokens"
          + (withImage ? " (" + spec.vision().tokensPerImage() + " of them the image)" : "")
          + ", but the model's context holds " + context + " including at least one generated token");
    }
    long room = context - numPromptTokens;
    long maxTokens = Integer.toUnsignedLong(request.getSampling().getMaxTokens());
    if (maxTokens > room) {
      throw RequestException.invalid("sampling.max_tokens", maxTokens + " tokens after a prompt of " + numPromptTokens
          + " exceed the model's context of " + context + " (at most " + room + ")");
    }
    long minTokens = Integer.toUnsignedLong(request.getSampling().getMinTokens());
    if (minTokens > room) {
      throw RequestException.invalid("sampling.min_tokens", minTokens + " tokens after a prompt of " + numPromptTokens
          + " exceed the model's context of " + context + " (at most " + room + ")");
    }
    return (int) (maxTokens == 0 ? room : maxTokens);
  }

}
