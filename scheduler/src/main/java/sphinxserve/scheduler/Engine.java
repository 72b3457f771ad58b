package sphinxserve.scheduler;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.ImageSpan;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.PrefixKey;

/**
 * The continuous-batching engine: one thread that owns the {@link Scheduler}, the {@link KvCacheManager} and
 * every request's state, and drives a {@link ModelRuntime} step after step. Requests join and leave the
 * running batch at every step.
 *
 * <p>Other threads talk to it only through a command queue ({@link #submit}, {@link #abort}), drained between
 * steps, so an abort takes effect within one step. The engine thread never blocks on a consumer: output goes
 * to each request's {@code TokenSink}, which must buffer (see {@link DeltaBuffer}).
 *
 * <p>Admission control happens at {@link #submit}, on the caller's thread: a request that can never fit
 * (longer than the context, or needing more blocks than the pool has) or arriving when {@code maxWaiting}
 * requests already wait is refused at once; an accepted request is never dropped, only finished.
 */
public final class Engine implements AutoCloseable {

  /** The answer to a submission. */
  public sealed interface Admission {
    /** Accepted: output will reach the request's sink. */
    record Accepted() implements Admission {}

    /** Refused; nothing reaches the sink. */
    record Rejected(Reason reason, String message) implements Admission {}

    /** Why a submission is refused. */
    enum Reason {
      /** {@code maxWaiting} requests already wait. */
      QUEUE_FULL,
      /** The request can never fit: context or KV pool too small for it. */
      TOO_LARGE,
      /** The engine is shutting down. */
      CLOSED
    }
  }

  private final ModelRuntime runtime;
  private final KvCacheManager kv;
  private final EngineConfig config;
  private final ModelSpec spec;
  private final ParallelSampler sampler;
  private final Scheduler scheduler;
  private final EngineStats stats = new EngineStats();
  private final ConcurrentLinkedQueue<Object> commands = new ConcurrentLinkedQueue<>();
  private final AtomicInteger numQueued = new AtomicInteger(); // accepted, never admitted yet
  private final AtomicLong sequenceIds = new AtomicLong();
  private final Thread thread;
  /** Submissions hold the read lock while they check {@link #closing} and enqueue; close takes the write
   *  lock to set it, so no Add can slip in after the engine's final drain and be left unfinished. */
  private final java.util.concurrent.locks.ReadWriteLock closeLock = new java.util.concurrent.locks.ReentrantReadWriteLock();
  private volatile boolean closing;
  private long arrivals;

  /** Stack size of the engine thread. */
  private static final long ENGINE_STACK_BYTES = 64L << 20;

  private record Add(EngineRequest request, long arrivalNanos) {}

  private record Abort(String requestId, FinishReason reason) {}

  /** An engine over {@code runtime} and {@code kv} (built over the runtime's KV storage); call {@link #start}. */
  public Engine(ModelRuntime runtime, KvCacheManager kv, EngineConfig config) {
    this.runtime = runtime;
    this.kv = kv;
    this.config = config;
    this.spec = runtime.spec();
    this.sampler = new ParallelSampler(spec.vocabSize(), config.samplingThreads());
    this.scheduler = new Scheduler(kv, config, sampler, spec.maxContextTokens(), stats, numQueued::decrementAndGet);
    // A large stack: the engine thread runs native inference code (ONNX Runtime uses the caller as one of its
    // workers), and a native stack overflow kills the JVM without a Java error (seen at 1 MiB while loading).
    this.thread = Thread.ofPlatform().name("sphinx-engine").stackSize(ENGINE_STACK_BYTES).unstarted(this::loop);
  }

  /** Starts the engine thread. */
  public Engine start() {
    thread.start();
    return this;
  }

  public EngineStats stats() {
    return stats;
  }

  /** Submits a request from any thread; never blocks. */
  public Admission submit(EngineRequest request) {
    int promptTokens = request.promptTokenIds().length;
    if (promptTokens >= spec.maxContextTokens()) {
      return new Admission.Rejected(Admission.Reason.TOO_LARGE, "prompt of " + promptTokens
          + " tokens leaves no room to generate in the model's context of " + spec.maxContextTokens());
    }
    int longest = (int) Math.min(spec.maxContextTokens(), (long) promptTokens + request.sampling().maxTokens());
    if (kv.blocksFor(longest) > kv.numBlocks()) {
      return new Admission.Rejected(Admission.Reason.TOO_LARGE, "a sequence of up to " + longest + " tokens needs "
          + kv.blocksFor(longest) + " KV blocks; the pool has " + kv.numBlocks());
    }
    closeLock.readLock().lock();
    try {
      if (closing) return new Admission.Rejected(Admission.Reason.CLOSED, "the engine is shutting down");
      if (numQueued.incrementAndGet() > config.maxWaiting()) {
        numQueued.decrementAndGet();
        return new Admission.Rejected(Admission.Reason.QUEUE_FULL, config.maxWaiting() + " requests are already waiting");
      }
      commands.add(new Add(request, System.nanoTime()));
    } finally {
      closeLock.readLock().unlock();
    }
    LockSupport.unpark(thread);
    return new Admission.Accepted();
  }

  /** Aborts a request from any thread; takes effect before the next step. Unknown ids are ignored. */
  public void abort(String requestId) {
    commands.add(new Abort(requestId, FinishReason.ABORTED));
    LockSupport.unpark(thread);
  }

  /** Stops the engine: live requests finish with ABORTED, the thread ends. Idempotent. */
  @Override
  public void close() {
    closeLock.writeLock().lock();
    try {
      closing = true;
    } finally {
      closeLock.writeLock().unlock();
    }
    LockSupport.unpark(thread);
    if (thread.isAlive() && thread != Thread.currentThread()) {
      try {
        thread.join(TimeUnit.SECONDS.toMillis(30));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void loop() {
    try {
      while (!closing) {
        drainCommands();
        long now = System.nanoTime();
        scheduler.expireDeadlines(now);
        if (!scheduler.hasWork()) {
          LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
          continue;
        }
        step(now);
      }
    } finally {
      drainCommands();
      scheduler.finishAll(FinishReason.ABORTED, "the engine is shutting down", System.nanoTime());
      sampler.close();
    }
  }

  private void step(long start) {
    StepPlan plan = scheduler.schedule(start);
    if (plan.isEmpty()) {
      // Waiting work that does not fit yet and nothing running: only an abort or deadline can change that.
      LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
      return;
    }
    long modelStart = System.nanoTime();
    StepOutput output;
    try {
      output = runtime.step(plan.steps());
    } catch (RuntimeException e) {
      scheduler.failStep(plan, e, System.nanoTime());
      return;
    }
    long modelEnd = System.nanoTime();
    scheduler.apply(plan, output, modelEnd);
    stats.recordStep(System.nanoTime() - start, modelEnd - modelStart, plan.requests().size(), plan.numScheduledTokens());
  }

  private void drainCommands() {
    List<Object> batch = new ArrayList<>();
    for (Object command; (command = commands.poll()) != null; ) batch.add(command);
    long now = System.nanoTime();
    for (Object command : batch) {
      switch (command) {
        case Add add -> {
          if (closing) {
            numQueued.decrementAndGet();
            add.request().sink().onFinish(FinishReason.ABORTED, null, "the engine is shutting down");
          } else {
            scheduler.add(newRequest(add));
          }
        }
        case Abort abort -> scheduler.abort(abort.requestId(), abort.reason(), null, now);
        default -> throw new IllegalStateException("unknown command " + command);
      }
    }
  }

  private Request newRequest(Add add) {
    EngineRequest request = add.request();
    ImageEmbeddings image = request.image();
    List<ImageSpan> spans = image == null ? List.of()
        : List.of(new ImageSpan(image.digest(), request.imageStart(), request.imageStart() + image.numTokens()));
    PrefixKey key = PrefixKey.of(spec.bundleId(), request.tenantSalt(), spans);
    SamplingState sampling = new SamplingState(request.sampling(), spec.vocabSize(), spec.specialTokens().eos(), request.promptTokenIds());
    List<String> stops = new ArrayList<>(spec.stopStrings());
    stops.addAll(request.sampling().stop());
    stats.recordAccepted(request.promptTokenIds().length);
    return new Request(request, sequenceIds.incrementAndGet(), arrivals++, add.arrivalNanos(), key, sampling,
        new IncrementalDetokenizer(runtime.tokenizer()), stops);
  }
}
