package sphinxserve.server;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Limits;
import dev.sphinxserve.proto.v1.ModelInfo;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.PutImageResponse;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.opentelemetry.api.trace.Span;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.TextTokenizer;
import sphinxserve.server.image.EncodedImage;
import sphinxserve.server.image.ImageCache;
import sphinxserve.server.image.ImageRejectedException;

/**
 * The {@code sphinx.v1.Sphinx} service: validates, renders, resolves the image, hands Generate to the
 * {@link GenerationBackend}; serves PutImage and GetModelInfo itself.
 *
 * <p>Generate, in order, failing fast and cheaply: (1) field validation ({@link RequestValidator}); (2)
 * prompt rendering and the context checks, before any image work, since they only need the image's token
 * count; (3) the image: bytes go through the {@link ImageCache} (single flight, batched encoding), a digest
 * must already be held (NOT_FOUND otherwise); (4) {@link GenerationBackend#submit}. Steps 3–4 run when the
 * image future completes, so no gRPC thread waits for the encoder. Every outcome, errors included, reaches
 * the client through the call's {@link StreamSink}, which serialises writes.
 */
final class SphinxService extends SphinxGrpc.SphinxImplBase {

  private final ModelSpec spec;
  private final String modelName;
  private final String templateName;
  private final PromptRenderer renderer;
  private final ImageCache images;
  private final GenerationBackend backend;
  private final NodeConfig config;
  private final Executor executor;
  private final InFlightCalls inFlight = new InFlightCalls();
  private volatile boolean draining;

  SphinxService(ModelSpec spec, String modelName, String templateName, TextTokenizer tokenizer, ImageCache images,
      GenerationBackend backend, NodeConfig config, Executor executor) {
    this.spec = spec;
    this.modelName = modelName;
    this.templateName = templateName;
    this.renderer = new PromptRenderer(spec, tokenizer);
    this.images = images;
    this.backend = backend;
    this.config = config;
    this.executor = executor;
  }

  /** Refuses new Generate and PutImage calls with UNAVAILABLE from now on. */
  void startDraining() {
    draining = true;
  }

  /** Waits until every Generate and PutImage call in progress has ended, at most {@code timeout}; whether all have. */
  boolean awaitCallsEnded(long timeout, TimeUnit unit) throws InterruptedException {
    return inFlight.awaitNone(timeout, unit);
  }

  @Override
  public void generate(GenerateRequest request, StreamObserver<GenerateResponse> observer) {
    long arrival = System.nanoTime();
    inFlight.enter(); // before the draining check, so shutdown's wait cannot miss this call
    RequestTelemetry telemetry = RequestTelemetry.current();
    StreamSink sink = new StreamSink((ServerCallStreamObserver<GenerateResponse>) observer, executor, inFlight::exit);
    Deadline deadline = Context.current().getDeadline();
    long deadlineNanos = deadline == null ? Long.MAX_VALUE : arrival + deadline.timeRemaining(TimeUnit.NANOSECONDS);
    if (draining) {
      sink.fail(Status.UNAVAILABLE.withDescription("node is draining; retry on another node"));
      return;
    }
    String imageField = "image";
    Tenant tenant = Tenant.current();
    String scope = tenant.cacheScope(config.shareCaches());
    try {
      RequestValidator.Valid valid = RequestValidator.validate(request, config.maxTurns(), config.maxPromptChars());
      telemetry.requestId(valid.requestId());
      sink.onCancel(() -> backend.abort(sink));
      RequestValidator.ImageRef ref = valid.image();
      if (ref != null && !spec.acceptsImages()) throw RequestException.invalid(ref.field(), "this model is text-only and takes no images");
      int[] prompt = renderer.render(request.getMessagesList(), ref != null);
      int contextMaxTokens = checkContext(prompt.length, ref != null, request);
      int tenantMaxTokens = tenant.limits().maxTokens();
      if (tenantMaxTokens > 0) {
        if (Integer.compareUnsigned(request.getSampling().getMaxTokens(), tenantMaxTokens) > 0) {
          throw RequestException.invalid("sampling.max_tokens", "at most " + tenantMaxTokens + " for tenant " + tenant.name()
              + " (max-tokens), got " + Integer.toUnsignedString(request.getSampling().getMaxTokens()));
        }
      }
      // max_tokens 0: the tenant's cap, not the whole context
      int maxNewTokens = tenantMaxTokens > 0 ? Math.min(contextMaxTokens, tenantMaxTokens) : contextMaxTokens;
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
        try {
          if (error != null) {
            sink.fail(Statuses.of(error, field));
          } else if (!sink.isCancelled()) {
            backend.submit(new PreparedRequest(valid.requestId(), prompt, Optional.ofNullable(input), request.getSampling(),
                maxNewTokens, request.getPriority(), arrival, deadlineNanos, tenant.tenantSalt(config.shareCaches()), telemetry), sink);
          }
        } catch (RuntimeException e) { // a stream must end with a status, never hang on a failed callback
          sink.fail(internal(e));
        }
      });
    } catch (RequestException | ImageRejectedException e) {
      sink.fail(Statuses.of(e, imageField));
    } catch (RuntimeException e) {
      sink.fail(internal(e));
    }
  }

  private static Status internal(RuntimeException e) {
    return Status.INTERNAL.withDescription("the request failed inside the node: " + e).withCause(e);
  }

  /** Refuses an image over the tenant's {@code max-image-bytes} with INVALID_ARGUMENT naming {@code field}. */
  private static void checkTenantImageBytes(Tenant tenant, String field, int numBytes) {
    long max = tenant.limits().maxImageBytes();
    if (max > 0 && numBytes > max) {
      throw RequestException.invalid(field, numBytes + " bytes, at most " + max + " for tenant " + tenant.name() + " (max-image-bytes)");
    }
  }

  /** Checks that the prompt and the requested tokens fit the context; returns the tokens to generate at most. */
  private int checkContext(int numPromptTokens, boolean withImage, GenerateRequest request) {
    int context = spec.maxContextTokens();
    if (numPromptTokens >= context) {
      throw RequestException.invalid("messages", "the prompt takes " + numPromptTokens + " tokens"
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

  @Override
  public void putImage(PutImageRequest request, StreamObserver<PutImageResponse> observer) {
    inFlight.enter();
    if (draining) {
      observer.onError(Status.UNAVAILABLE.withDescription("node is draining; retry on another node").asRuntimeException());
      inFlight.exit();
      return;
    }
    CompletableFuture<ImageCache.Result> result;
    Tenant tenant = Tenant.current();
    try {
      if (!spec.acceptsImages()) throw RequestException.invalid("image", "this model is text-only and takes no images");
      checkTenantImageBytes(tenant, "image", request.getImage().size());
      result = images.put(tenant.cacheScope(config.shareCaches()), request.getImage().toByteArray());
    } catch (RequestException e) {
      observer.onError(e.status().asRuntimeException());
      inFlight.exit();
      return;
    } catch (ImageRejectedException e) {
      observer.onError(Statuses.of(e, "image").asRuntimeException());
      inFlight.exit();
      return;
    }
    result.whenComplete((r, error) -> {
      try {
        if (error != null) {
          observer.onError(Statuses.of(error, "image").asRuntimeException());
        } else {
          observer.onNext(PutImageResponse.newBuilder().setDigest(r.image().digest()).setWidth(r.image().width())
              .setHeight(r.image().height()).setCached(r.cacheHit()).build());
          observer.onCompleted();
        }
      } finally {
        inFlight.exit();
      }
    });
  }

  @Override
  public void getModelInfo(GetModelInfoRequest request, StreamObserver<ModelInfo> observer) {
    observer.onNext(modelInfo());
    observer.onCompleted();
  }

  /** The served model and the node's limits. */
  ModelInfo modelInfo() {
    ModelInfo.Builder info = ModelInfo.newBuilder()
        .setBundleId(spec.bundleId())
        .setModelName(modelName)
        .setArchitecture(spec.architecture())
        .setVocabSize(spec.vocabSize())
        .setMaxContextTokens(spec.maxContextTokens())
        .setAcceptsImages(spec.acceptsImages())
        .setTemplate(templateName);
    if (spec.template().isJinja()) info.setChatTemplate(spec.template().jinja());
    var v = spec.vision();
    if (v != null) {
      info.setImageSize(v.imageSize()).setGrid(v.grid()).setNumViews(v.numViews()).setTokensPerView(v.tokensPerView())
          .setImageTokens(v.tokensPerImage());
    }
    return info
        .addAllStopStrings(spec.stopStrings())
        .setLimits(Limits.newBuilder()
            .setMaxImageBytes(config.maxImageBytes())
            .setMaxImagePixels(config.maxImagePixels())
            .setMaxWaitingRequests(config.maxWaitingRequests())
            .setMaxRunningRequests(config.maxRunningRequests())
            .setMaxMessageBytes(config.maxMessageBytes()))
        .build();
  }
}
