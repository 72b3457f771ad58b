package sphinxserve.server.image;

import com.github.benmanes.caffeine.cache.AsyncCache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.stats.CacheStats;
import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.timelimiter.TimeLimiter;
import io.github.resilience4j.timelimiter.TimeLimiterConfig;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import sphinxserve.api.ModelRuntime;

/**
 * The node's image cache: encoded images by (bundle id, tenant scope, SHA-256 digest), encoding on a miss.
 *
 * <p>How: a Caffeine {@link AsyncCache} holds one future per image, weighed by its embeddings' bytes and
 * bounded by {@link ImageCacheConfig#maxCacheBytes()}. {@link #put} asks the cache for the key's future and
 * creates it only when absent, so concurrent requests for one image share a single decode and encode
 * (single flight); a failed future is dropped by Caffeine, so a failure is not cached. A miss runs through:
 * <pre>
 *   bulkhead permit ──▶ decode + preprocess (decode pool) ──▶ VisionBatcher queue ──▶ encodeViews (batched)
 * </pre>
 * The Resilience4j bulkhead bounds the image jobs in progress (permit held until the embeddings are ready)
 * and refuses more at once rather than queueing them: an image flood gets RESOURCE_EXHAUSTED instead of
 * taking the cores the decoder needs. A Resilience4j time limiter bounds each job, queueing included
 * ({@link ImageCacheConfig#timeout()}): past it the cached future fails with
 * {@link ImageRejectedException.Kind#TIMED_OUT} (RESOURCE_EXHAUSTED) and is dropped, so every caller waiting
 * on that image is answered at once. ONNX Runtime calls cannot be interrupted, so work already running is
 * left to finish and keeps its bulkhead permit until it does (the permit counts real work, not waiting
 * callers); a job whose decode had not started yet is skipped. Lookups by digest alone never encode.
 *
 * <p>Isolation: every entry belongs to a scope (the tenant, or {@link #SHARED}); a lookup or put in one scope
 * never hits another's entry, so neither a cache hit nor a digest lookup tells a tenant whether another sent an
 * image. The price is one encoding per tenant of an image several tenants send.
 *
 * <p>Metrics: {@link #numHits()} / {@link #numMisses()} count lookups by outcome (the
 * {@code sphinx.image_cache.lookups{result}} instrument reads them); {@link #stats()} is Caffeine's own.
 */
public final class ImageCache implements AutoCloseable {

  /**
   * How long {@link #close} waits for the vision encoder's call in flight: one batch of views takes seconds at
   * most; one still running after this has hung in native code, and the runtime is then left open.
   */
  static final java.time.Duration CLOSE_WAIT = java.time.Duration.ofSeconds(60);

  /** The scope of a cache shared by every caller (no authentication, or {@code --share-caches}). */
  public static final String SHARED = "";

  private final String bundleId;
  private final ImageLimits limits;
  private final ImageDecoder decoder;
  private final ViewPreprocessor preprocessor;
  private final ExecutorService decodePool;
  private final VisionBatcher batcher;
  private final Bulkhead bulkhead;
  private final TimeLimiter timeLimiter;
  private final ScheduledExecutorService timer;
  private final AsyncCache<ImageKey, EncodedImage> cache;
  private final LongAdder numHits = new LongAdder();
  private final LongAdder numMisses = new LongAdder();

  /** A cache for {@code runtime}'s model; encodes with {@code runtime}, which the caller keeps owning. */
  public ImageCache(ModelRuntime runtime, ImageCacheConfig config) {
    this.bundleId = runtime.spec().bundleId();
    this.limits = config.limits();
    this.decoder = new ImageDecoder(config.limits());
    // A text-only model has no views to make; the service refuses images before they reach put().
    this.preprocessor = runtime.spec().acceptsImages() ? new ViewPreprocessor(runtime.spec().vision()) : null;
    AtomicInteger threadIds = new AtomicInteger();
    this.decodePool = Executors.newFixedThreadPool(config.numDecodeThreads(),
        r -> Thread.ofPlatform().name("sphinx-image-" + threadIds.incrementAndGet()).daemon().unstarted(r));
    this.batcher = new VisionBatcher(runtime, config.maxVisionBatch());
    this.bulkhead = Bulkhead.of("sphinx-image-jobs", BulkheadConfig.custom()
        .maxConcurrentCalls(config.maxImageJobs()).maxWaitDuration(Duration.ZERO).build());
    this.timeLimiter = TimeLimiter.of("sphinx-image-jobs", TimeLimiterConfig.custom()
        .timeoutDuration(config.timeout()).cancelRunningFuture(false).build());
    this.timer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().name("sphinx-image-timer").daemon().unstarted(r));
    this.cache = Caffeine.newBuilder()
        .maximumWeight(config.maxCacheBytes())
        .weigher((ImageKey k, EncodedImage v) -> (int) Math.min(Integer.MAX_VALUE, v.sizeBytes()))
        .recordStats()
        .buildAsync();
  }

  /**
   * The outcome of {@link #put}.
   *
   * @param image the encoded image
   * @param cacheHit whether the node held the image (or was already encoding it) before this call
   */
  public record Result(EncodedImage image, boolean cacheHit) {}

  /**
   * The encoded image of {@code bytes}, from the cache or encoded now. Refusals before any work (empty, too
   * many bytes) throw {@link ImageRejectedException}; later ones (unreadable, too many pixels, busy) fail the
   * future with it.
   */
  public CompletableFuture<Result> put(byte[] bytes) {
    return put(SHARED, bytes);
  }

  /** As {@link #put(byte[])} in {@code scope} (a tenant's own part of the cache). */
  public CompletableFuture<Result> put(String scope, byte[] bytes) {
    if (preprocessor == null) throw new IllegalStateException("a text-only model takes no images");
    ImageDecoder.checkBytes(bytes.length, limits);
    String digest = ImageDigest.of(bytes);
    boolean[] loaded = {false};
    CompletableFuture<EncodedImage> future = cache.get(new ImageKey(bundleId, scope, digest), (key, executor) -> {
      loaded[0] = true;
      return encode(bytes, digest);
    });
    (loaded[0] ? numMisses : numHits).increment();
    boolean hit = !loaded[0];
    return future.thenApply(image -> new Result(image, hit));
  }

  /** The image with {@code digest} if the node holds it (or is encoding it); never encodes. */
  public Optional<CompletableFuture<EncodedImage>> lookup(String digest) {
    return lookup(SHARED, digest);
  }

  /** The image with {@code digest} if {@code scope} holds it (or is encoding it); never encodes, never looks in other scopes. */
  public Optional<CompletableFuture<EncodedImage>> lookup(String scope, String digest) {
    CompletableFuture<EncodedImage> future = cache.getIfPresent(new ImageKey(bundleId, scope, digest));
    (future == null ? numMisses : numHits).increment();
    return Optional.ofNullable(future);
  }

  /**
   * Forgets the image with {@code digest}, if held (an encoding in progress is dropped from the cache but still
   * completes for the requests already waiting on it). Later requests naming the digest get NOT_FOUND until its
   * bytes come again. For an operator asked to drop an image, and for tests of the clients' resend path.
   */
  public void invalidate(String digest) {
    invalidate(SHARED, digest);
  }

  /** As {@link #invalidate(String)} in {@code scope}. */
  public void invalidate(String scope, String digest) {
    cache.synchronous().invalidate(new ImageKey(bundleId, scope, digest));
  }

  private CompletableFuture<EncodedImage> encode(byte[] bytes, String digest) {
    if (!bulkhead.tryAcquirePermission()) {
      return CompletableFuture.failedFuture(new ImageRejectedException(ImageRejectedException.Kind.BUSY,
          "the node is already processing " + bulkhead.getBulkheadConfig().getMaxConcurrentCalls()
              + " images (max_image_jobs); retry later"));
    }
    CompletableFuture<EncodedImage> work = new CompletableFuture<>();
    work.whenComplete((image, error) -> bulkhead.onComplete());
    // The limiter fails the future it is given on timeout, so it gets a copy: the permit follows the work itself.
    CompletableFuture<EncodedImage> limited = timeLimiter.executeCompletionStage(timer, work::copy).toCompletableFuture()
        .exceptionallyCompose(error -> CompletableFuture.failedFuture(unwrap(error) instanceof TimeoutException
            ? new ImageRejectedException(ImageRejectedException.Kind.TIMED_OUT, "not decoded and encoded within "
                + timeLimiter.getTimeLimiterConfig().getTimeoutDuration().toMillis() + " ms (image_timeout); the node is busy or the image too costly")
            : unwrap(error)));
    try {
      decodePool.execute(() -> {
        if (limited.isDone()) { // timed out while queued: nobody waits for it any more
          work.cancel(false);
          return;
        }
        try {
          DecodedImage image = decoder.decode(bytes);
          float[] pixels = preprocessor.preprocess(image);
          batcher.submit(digest, image.width(), image.height(), pixels).whenComplete((encoded, error) -> {
            if (error != null) work.completeExceptionally(error);
            else work.complete(encoded);
          });
        } catch (RuntimeException | Error e) {
          work.completeExceptionally(e);
        }
      });
    } catch (RejectedExecutionException e) {
      work.completeExceptionally(new IllegalStateException("image pipeline stopped", e));
    }
    return limited;
  }

  private static Throwable unwrap(Throwable error) {
    Throwable e = error;
    while (e instanceof java.util.concurrent.CompletionException && e.getCause() != null) e = e.getCause();
    return e;
  }

  /** Lookups that found the image (or its encoding in progress). */
  public long numHits() {
    return numHits.sum();
  }

  /** Lookups that did not: a PutImage or Generate that encoded, or an unknown digest. */
  public long numMisses() {
    return numMisses.sum();
  }

  /** Caffeine's statistics (hits, misses, load times, evictions). */
  public CacheStats stats() {
    return cache.synchronous().stats();
  }

  /** Bytes of embeddings held now. */
  public long weightedBytes() {
    return cache.synchronous().policy().eviction().map(e -> e.weightedSize().orElse(0)).orElse(0L);
  }

  /** Images waiting for the vision encoder (a gauge; also lets tests line up a batch). */
  public int numQueuedForEncoder() {
    return batcher.numQueued();
  }

  /** Image jobs that may still start now. */
  public int numFreeImageJobs() {
    return bulkhead.getMetrics().getAvailableConcurrentCalls();
  }

  /**
   * Stops decoding and encoding; work in progress finishes or fails, the vision encoder's call in flight is waited
   * for up to {@link #CLOSE_WAIT}. The runtime stays open; free it only once {@link #isStopped}.
   */
  @Override
  public void close() {
    timer.shutdownNow();
    decodePool.shutdown();
    try {
      decodePool.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    batcher.close(CLOSE_WAIT);
  }

  /** Whether the vision encoder's thread has ended, so no call into the runtime runs or will start. */
  public boolean isStopped() {
    return batcher.isStopped();
  }
}
