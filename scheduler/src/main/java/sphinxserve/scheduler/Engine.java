package sphinxserve.scheduler;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
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
 * to each request's {@code TokenSink}, which must buffer and hand off to another thread.
 *
 * <p>Admission control happens at {@link #submit}, on the caller's thread: a request that can never fit
 * (longer than the context, or needing more blocks than the pool has) or arriving when {@code maxWaiting}
 * requests already wait is refused at once; an accepted request is never dropped, only finished.
 *
 * <p><b>Failures.</b> A failure ends only the requests it concerns, with {@link FinishReason#ERROR} and their
 * blocks freed: a model step that throws ends the step's requests; a row the sampler cannot use (NaN or
 * +Infinity logits) or a request whose output handling throws ends that request; everything else carries on.
 * The engine thread never dies silently: when it cannot go on (its own bookkeeping threw, an {@link Error},
 * or {@value #MAX_CONSECUTIVE_FAILED_STEPS} model steps in a row failed), every live request ends with ERROR,
 * further submissions are refused ({@link Admission.Reason#FAILED}), the cause is logged and handed to the
 * {@code onFailure} listener, whose owner reports itself unhealthy and restarts.
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
      CLOSED,
      /** The engine failed and serves nothing more (see {@link Engine#failure}). */
      FAILED
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
  /** Set once, before {@link #closing}, when the engine cannot go on. */
  private volatile Throwable failure;
  private final Consumer<Throwable> onFailure;
  private long arrivals;
  private int numConsecutiveFailedSteps;

  /**
   * Model steps that may fail in a row before the engine gives up: one failed step ends its requests and the
   * engine carries on; a runtime that fails every step would otherwise answer every request with an error
   * while looking healthy.
   */
  public static final int MAX_CONSECUTIVE_FAILED_STEPS = 8;

  private static final System.Logger LOG = System.getLogger(Engine.class.getName());

  /**
   * How long {@link #close()} waits for the model step in flight: a step is bounded by the token budget and takes
   * well under a second normally, seconds for a long prefill chunk on a slow CPU; one still running after this
   * has hung in native code, and the engine gives up on it rather than block shutdown for ever.
   */
  public static final java.time.Duration CLOSE_WAIT = java.time.Duration.ofSeconds(60);

  /** How often closing logs that it still waits for a model step. */
  private static final long CLOSE_LOG_INTERVAL_MILLIS = 10_000;

  /** Stack size of the engine thread. */
  private static final long ENGINE_STACK_BYTES = 64L << 20;

  private record Add(EngineRequest request, long arrivalNanos) {}

  private record Abort(String requestId, FinishReason reason) {}

  /**
   * An engine over {@code runtime} and {@code kv} (built over the runtime's KV storage) whose failure is only
   * logged; call {@link #start}.
   */
  public Engine(ModelRuntime runtime, KvCacheManager kv, EngineConfig config) {
    this(runtime, kv, config, cause -> {});
  }

  /**
   * An engine over {@code runtime} and {@code kv} (built over the runtime's KV storage); call {@link #start}.
   *
   * @param onFailure runs once, on the engine thread after every live request ended, if the engine cannot go on
   */
  public Engine(ModelRuntime runtime, KvCacheManager kv, EngineConfig config, Consumer<Throwable> onFailure) {
    this.onFailure = onFailure;
    this.runtime = runtime;
    this.kv = kv;
    this.config = config;
    this.spec = runtime.spec();
    // Models often pad their vocabulary past the tokenizer's (to a multiple of 64, say): those ids have no text.
    this.sampler = new ParallelSampler(spec.vocabSize(), Math.min(spec.vocabSize(), runtime.tokenizer().vocabSize()),
        config.samplingThreads());
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
      if (failure != null) return new Admission.Rejected(Admission.Reason.FAILED, "the engine failed: " + failure);
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

  /**
   * Stops the engine: live requests finish with ABORTED and the thread ends, waiting up to {@link #CLOSE_WAIT} for
   * the model step in flight. Idempotent. Check {@link #isStopped} before freeing what the runtime writes into.
   */
  @Override
  public void close() {
    close(CLOSE_WAIT);
  }

  /**
   * As {@link #close()}, waiting up to {@code maxWait} for the engine thread to end; true when it ended. False means
   * a model step is still running after the wait (logged): its runtime and KV storage must then stay allocated,
   * since the step writes into them, and the owner leaves them to the process's exit instead of freeing them.
   */
  public boolean close(java.time.Duration maxWait) {
    closeLock.writeLock().lock();
    try {
      closing = true;
    } finally {
      closeLock.writeLock().unlock();
    }
    LockSupport.unpark(thread);
    if (thread == Thread.currentThread()) return false; // a sink closing its own engine: the loop ends after this step
    return awaitStopped(maxWait);
  }

  /**
   * Waits up to {@code maxWait} for the engine thread to end, logging while a model step keeps it (one step can
   * be a long prefill chunk on a slow machine); true when it ended, or was never started.
   */
  private boolean awaitStopped(java.time.Duration maxWait) {
    long deadline = System.nanoTime() + maxWait.toNanos();
    try {
      while (thread.isAlive()) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          LOG.log(System.Logger.Level.ERROR, "the model step in flight has not returned " + maxWait.toMillis()
              + " ms after close; its runtime and KV memory must stay allocated (the step writes into them)");
          return false;
        }
        thread.join(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), CLOSE_LOG_INTERVAL_MILLIS)));
        if (thread.isAlive() && System.nanoTime() < deadline) {
          LOG.log(System.Logger.Level.WARNING, "closing: waiting for the model step in flight to return");
        }
      }
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return !thread.isAlive();
    }
  }

  /**
   * Whether the engine thread has ended (or never started): no model step runs or will start, so the runtime and
   * the KV storage may be freed. False while a step outlives {@link #close}'s wait.
   */
  public boolean isStopped() {
    return !thread.isAlive();
  }

  /** Why the engine stopped serving, if it failed (it then refuses submissions with {@link Admission.Reason#FAILED}). */
  public java.util.Optional<Throwable> failure() {
    return java.util.Optional.ofNullable(failure);
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
    } catch (Throwable cause) { // the engine's own state is in doubt, or the JVM is in trouble: stop serving
      fail(cause);
    } finally {
      try {
        drainCommands();
        FinishReason reason = failure == null ? FinishReason.ABORTED : FinishReason.ERROR;
        scheduler.finishAll(reason, failure == null ? "the engine is shutting down" : "the engine failed: " + failure, System.nanoTime());
      } catch (RuntimeException e) {
        LOG.log(System.Logger.Level.ERROR, "ending the live requests failed", e);
      } finally {
        sampler.close();
        if (failure != null) notifyFailure();
      }
    }
  }

  private void notifyFailure() {
    try {
      onFailure.accept(failure);
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.ERROR, "the engine's failure listener threw", e);
    }
  }

  /** Records why the engine stops and refuses submissions from now on; the loop's end finishes what is live. */
  private void fail(Throwable cause) {
    LOG.log(System.Logger.Level.ERROR, "the engine cannot go on; every live request ends with an error", cause);
    closeLock.writeLock().lock();
    try {
      failure = cause;
      closing = true;
    } finally {
      closeLock.writeLock().unlock();
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
      if (++numConsecutiveFailedSteps >= MAX_CONSECUTIVE_FAILED_STEPS) {
        throw new IllegalStateException(numConsecutiveFailedSteps + " model steps failed in a row; the last: " + e, e);
      }
      return;
    }
    numConsecutiveFailedSteps = 0;
    long modelEnd = System.nanoTime();
    scheduler.apply(plan, output, modelEnd);
    long stepNanos = System.nanoTime() - start;
    scheduler.observeStep(plan, stepNanos);
    stats.recordStep(stepNanos, modelEnd - modelStart, plan.requests().size(), plan.numScheduledTokens());
  }

  /** Runs the queued commands, taking them one at a time: should one throw, the rest stay queued for the final drain. */
  private void drainCommands() {
    long now = System.nanoTime();
    for (Object command; (command = commands.poll()) != null; ) {
      switch (command) {
        case Add add -> {
          if (closing) {
            refuse(add, failure == null ? FinishReason.ABORTED : FinishReason.ERROR,
                failure == null ? "the engine is shutting down" : "the engine failed: " + failure);
            continue;
          }
          Request request;
          try {
            request = newRequest(add);
          } catch (RuntimeException e) { // this request's own setup failed (its tokenizer, its stop strings)
            refuse(add, FinishReason.ERROR, "the request could not be set up: " + e);
            continue;
          }
          scheduler.add(request);
        }
        case Abort abort -> scheduler.abort(abort.requestId(), abort.reason(), null, now);
        default -> throw new IllegalStateException("unknown command " + command);
      }
    }
  }

  /** Ends an accepted request that never reached the scheduler. */
  private void refuse(Add add, FinishReason reason, String message) {
    numQueued.decrementAndGet();
    try {
      add.request().sink().onFinish(reason, null, message);
    } catch (RuntimeException ignored) {
      // The request is over either way; a failing sink must not take the engine down.
    }
  }

  private Request newRequest(Add add) {
    EngineRequest request = add.request();
    ImageEmbeddings image = request.image();
    List<ImageSpan> spans = image == null ? List.of()
        : List.of(new ImageSpan(image.digest(), request.imageStart(), request.imageStart() + image.numTokens()));
    PrefixKey key = PrefixKey.of(spec.bundleId(), request.tenantSalt(), spans);
    SamplingState sampling = new SamplingState(request.sampling(), spec.vocabSize(), spec.specialTokens().eosIds(), request.promptTokenIds());
    List<String> stops = new ArrayList<>(spec.stopStrings());
    stops.addAll(request.sampling().stop());
    stats.recordAccepted(request.promptTokenIds().length);
    return new Request(request, sequenceIds.incrementAndGet(), arrivals++, add.arrivalNanos(), key, sampling,
        new IncrementalDetokenizer(runtime.tokenizer()), stops);
  }
}
