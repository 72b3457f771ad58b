package sphinxserve.server.generate;

import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.TokenLogprobs;
import dev.sphinxserve.proto.v1.TopLogprob;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.TokenLogprob;
import sphinxserve.api.TokenSink;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStats;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.scheduler.Engine;
import sphinxserve.scheduler.EngineStats;
import sphinxserve.server.config.NodeConfig;

/**
 * The node's {@link GenerationBackend}: the scheduler's continuous-batching {@link Engine} over the node's KV
 * storage. Turns a {@link PreparedRequest} into an {@link EngineRequest} (proto sampling → engine sampling),
 * and the engine's output into {@code GenerateResponse}s on the call's sink. Engine ids are unique per call
 * even when clients reuse a {@code request_id}.
 */
public final class EngineBackend implements GenerationBackend {

  private final Engine engine;
  private final KvCacheManager kv;
  private final AtomicLong counter = new AtomicLong();
  private final ConcurrentHashMap<GenerationSink, String> liveIds = new ConcurrentHashMap<>();

  private final CompletableFuture<Throwable> failure = new CompletableFuture<>();

  /** Starts an engine over {@code runtime} and {@code storage} with {@code config}'s scheduler knobs. */
  public EngineBackend(ModelRuntime runtime, KvCacheStorage storage, NodeConfig config) {
    this.kv = new KvCacheManager(storage);
    this.engine = new Engine(runtime, kv, config.engineConfig(), failure::complete).start();
  }

  @Override
  public CompletionStage<Throwable> failure() {
    return failure.minimalCompletionStage();
  }

  /** The engine's counters, for metrics. */
  public EngineStats stats() {
    return engine.stats();
  }

  /** The KV cache's accounting (usage, prefix-cache lookups), for metrics; any thread. */
  public KvCacheStats kvStats() {
    return kv.stats();
  }

  @Override
  public void submit(PreparedRequest request, GenerationSink sink) {
    SamplingParams sampling;
    try {
      sampling = toEngine(request.sampling(), request.maxNewTokens());
    } catch (IllegalArgumentException e) {
      sink.fail(Status.INVALID_ARGUMENT.withDescription(e.getMessage()));
      return;
    }
    String engineId = request.requestId() + "#" + counter.incrementAndGet();
    ImageEmbeddings image = request.image().map(PreparedRequest.ImageInput::embeddings).orElse(null);
    int imageStart = request.image().map(PreparedRequest.ImageInput::start).orElse(0);
    boolean imageCacheHit = request.image().map(PreparedRequest.ImageInput::cacheHit).orElse(false);
    // Registered before the engine sees the request and checked for cancellation after: a cancel that lands in
    // between finds the id (abort) or is seen below; either way the request cannot run on as an orphan.
    liveIds.put(sink, engineId);
    request.telemetry().submitted();
    EngineRequest engineRequest = new EngineRequest(engineId, request.promptTokenIds(), image, imageStart, sampling,
        request.priority(), request.deadlineNanos(), request.tenantSalt(), new ResponseWriter(request, sink, imageCacheHit));
    switch (engine.submit(engineRequest)) {
      case Engine.Admission.Accepted accepted -> {
        if (sink.isCancelled()) engine.abort(engineId); // commands run in order: after the Add
      }
      case Engine.Admission.Rejected rejected -> {
        liveIds.remove(sink);
        if (request.onPrefilled() != null) request.onPrefilled().run(); // what waited for it goes on (and is refused or not on its own)
        Status status = switch (rejected.reason()) {
          case QUEUE_FULL -> Status.RESOURCE_EXHAUSTED;
          case TOO_LARGE -> Status.INVALID_ARGUMENT;
          case CLOSED, FAILED -> Status.UNAVAILABLE;
        };
        request.telemetry().rejected(status);
        sink.fail(status.withDescription(rejected.message()));
      }
    }
  }

  @Override
  public void abort(GenerationSink sink) {
    String engineId = liveIds.get(sink);
    if (engineId != null) engine.abort(engineId);
  }

  @Override
  public void close() {
    engine.close();
  }

  /** Proto sampling (zeros meaning "off") → engine sampling; validation errors name the field. */
  public static SamplingParams toEngine(dev.sphinxserve.proto.v1.SamplingParams p, int maxNewTokens) {
    SamplingParams.Builder b = SamplingParams.builder()
        .maxTokens(maxNewTokens)
        .temperature(p.getTemperature())
        .topP(p.getTopP() == 0 ? 1f : p.getTopP())
        .topK(p.getTopK())
        .minP(p.getMinP())
        .repetitionPenalty(p.getRepetitionPenalty() == 0 ? 1f : p.getRepetitionPenalty())
        .presencePenalty(p.getPresencePenalty())
        .frequencyPenalty(p.getFrequencyPenalty())
        .stop(p.getStopList())
        .ignoreEos(p.getIgnoreEos())
        .minTokens(p.getMinTokens())
        .logprobs(p.getLogprobs())
        .logitBias(p.getLogitBiasMap());
    if (p.hasSeed()) b.seed(p.getSeed());
    return b.build();
  }

  /** Writes the engine's output for one call; runs on the engine thread and only enqueues. */
  private final class ResponseWriter implements TokenSink {
    private final PreparedRequest request;
    private final GenerationSink sink;
    private final boolean imageCacheHit;
    private boolean first = true;
    private long firstTokenNanos;
    private boolean prefilledSignalled;

    ResponseWriter(PreparedRequest request, GenerationSink sink, boolean imageCacheHit) {
      this.request = request;
      this.sink = sink;
      this.imageCacheHit = imageCacheHit;
    }

    @Override
    public void onScheduled() {
      request.telemetry().scheduled();
    }

    @Override
    public void onPreempted() {
      request.telemetry().preempted();
    }

    @Override
    public void onTokens(String text, int[] tokenIds, List<TokenLogprob> logprobs) {
      long now = System.nanoTime();
      request.telemetry().token(now);
      GenerateResponse.Builder response = GenerateResponse.newBuilder().setText(text);
      for (int id : tokenIds) response.addTokenIds(id);
      for (TokenLogprob lp : logprobs) {
        TokenLogprobs.Builder entry = TokenLogprobs.newBuilder().setTokenId(lp.tokenId()).setLogprob(lp.logprob());
        for (int i = 0; i < lp.topTokenIds().length; i++) {
          entry.addTop(TopLogprob.newBuilder().setTokenId(lp.topTokenIds()[i]).setLogprob(lp.topLogprobs()[i]));
        }
        response.addLogprobs(entry);
      }
      if (first) {
        first = false;
        firstTokenNanos = now;
        response.setRequestId(request.requestId());
      }
      sink.emit(response.build());
      signalPrefilled();
    }

    /** Runs the request's {@code onPrefilled} once: at its first token, or at its end if it had none. */
    private void signalPrefilled() {
      if (prefilledSignalled) return;
      prefilledSignalled = true;
      if (request.onPrefilled() != null) request.onPrefilled().run();
    }

    @Override
    public void onFinish(sphinxserve.api.FinishReason reason, sphinxserve.api.Usage usage, String message) {
      liveIds.remove(sink);
      request.telemetry().finished(reason, usage);
      signalPrefilled();
      if (reason == sphinxserve.api.FinishReason.ERROR) {
        sink.fail(Status.INTERNAL.withDescription("request " + request.requestId() + " failed: " + message));
        return;
      }
      GenerateResponse.Builder last = GenerateResponse.newBuilder().setFinishReason(switch (reason) {
        case STOP -> FinishReason.STOP;
        case LENGTH -> FinishReason.LENGTH;
        case DEADLINE -> FinishReason.DEADLINE;
        case ABORTED, ERROR -> FinishReason.ABORTED;
      });
      if (first) last.setRequestId(request.requestId());
      if (usage != null) {
        last.setUsage(Usage.newBuilder()
            .setPromptTokens(usage.promptTokens())
            .setCompletionTokens(usage.completionTokens())
            .setImageTokens(usage.imageTokens())
            .setCachedPromptTokens(usage.cachedPromptTokens())
            .setImageCacheHit(imageCacheHit)
            .setQueueSeconds(usage.queueSeconds())
            .setTimeToFirstTokenSeconds(firstTokenNanos == 0 ? 0 : (firstTokenNanos - request.arrivalNanos()) / 1e9));
      }
      sink.emit(last.build());
    }
  }
}
