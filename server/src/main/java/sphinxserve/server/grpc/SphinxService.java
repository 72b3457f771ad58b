package sphinxserve.server.grpc;

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
import sphinxserve.structured.TokenVocabulary;
import sphinxserve.server.auth.Tenant;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.ConstraintCompiler;
import sphinxserve.server.generate.GenerateCalls;
import sphinxserve.server.generate.GenerationBackend;
import sphinxserve.server.generate.InFlightCalls;
import sphinxserve.server.generate.PromptRenderer;
import sphinxserve.server.generate.RequestException;
import sphinxserve.server.generate.Statuses;
import sphinxserve.server.image.ImageCache;
import sphinxserve.server.image.ImageRejectedException;
import sphinxserve.server.telemetry.RequestTelemetry;

/**
 * The {@code sphinx.v1.Sphinx} service: Generate through the shared request path ({@link GenerateCalls}: validate,
 * render, resolve the image, hand to the {@link GenerationBackend}), its output through the call's
 * {@link StreamSink}, which serialises writes; PutImage and GetModelInfo itself.
 */
public final class SphinxService extends SphinxGrpc.SphinxImplBase {

  private final ModelSpec spec;
  private final String modelName;
  private final String templateName;
  private final GenerateCalls calls;
  private final ImageCache images;
  private final GenerationBackend backend;
  private final NodeConfig config;
  private final Executor executor;
  private final InFlightCalls inFlight = new InFlightCalls();
  private volatile boolean draining;

  public SphinxService(ModelSpec spec, String modelName, String templateName, TextTokenizer tokenizer, ImageCache images,
      GenerationBackend backend, NodeConfig config, Executor executor) {
    this.spec = spec;
    this.modelName = modelName;
    this.templateName = templateName;
    ConstraintCompiler constraints = new ConstraintCompiler(() -> TokenVocabulary.of(tokenizer, spec.specialTokens().eosIds()));
    this.calls = new GenerateCalls(spec, new PromptRenderer(spec, tokenizer, config.chatTemplateLimits(), config.toolCallFormat()), constraints, images, backend, config);
    this.images = images;
    this.backend = backend;
    this.config = config;
    this.executor = executor;
  }

  /** The Generate path, shared with the HTTP API. */
  public GenerateCalls calls() {
    return calls;
  }

  /** Whether new calls are refused (the node drains). */
  public boolean isDraining() {
    return draining;
  }

  /** The calls the drain waits for; the HTTP API's streams count too. */
  public InFlightCalls inFlight() {
    return inFlight;
  }

  /** Refuses new Generate and PutImage calls with UNAVAILABLE from now on. */
  public void startDraining() {
    draining = true;
  }

  /** Waits until every Generate and PutImage call in progress has ended, at most {@code timeout}; whether all have. */
  public boolean awaitCallsEnded(long timeout, TimeUnit unit) throws InterruptedException {
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
    sink.onCancel(() -> backend.abort(sink));
    calls.start(request, Tenant.current(), arrival, deadlineNanos, telemetry, sink);
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
      GenerateCalls.checkTenantImageBytes(tenant, "image", request.getImage().size());
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
  public ModelInfo modelInfo() {
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
