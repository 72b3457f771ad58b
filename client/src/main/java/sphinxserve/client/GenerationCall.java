package sphinxserve.client;

import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.github.resilience4j.retry.Retry;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.Deadline;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.Flow;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * One logical generation, seen by its subscriber as one stream, made of one or more attempts (gRPC calls).
 *
 * <p>How: each attempt takes an endpoint (round robin, breaker permitting), starts a {@code Generate} call with the
 * shared deadline and the {@code x-image-digest} header, and forwards the responses. Flow control is end to end:
 * the subscriber's demand is passed to the call with {@link ClientCall#request(int)} (at most {@link #MAX_WINDOW}
 * outstanding), so a slow subscriber makes the node's stream wait rather than buffering here. When an attempt fails:
 *
 * <pre>
 *   NOT_FOUND, no token yet, digest sent, bytes known  → resend at once with the bytes (once; not a retry)
 *   UNAVAILABLE / RESOURCE_EXHAUSTED, no token yet       → retry after the Retry's backoff (on the next endpoint)
 *   anything else, or any failure after a token          → onError: a partly streamed answer is never repeated
 * </pre>
 *
 * <p>Every attempt settles its breaker permission exactly once in {@code onClose} (success, error, or release when
 * the subscriber cancelled). Threads: gRPC serialises one call's listener callbacks, and an attempt starts only after
 * the previous one closed, so subscriber signals are serial; {@code request} and {@code cancel} come from any
 * thread and meet the listener under {@link #lock}.
 */
final class GenerationCall implements Flow.Subscription {
  /** Most messages requested from the node ahead of delivery, whatever the subscriber's demand. */
  static final int MAX_WINDOW = 1 << 16;

  private final Endpoints endpoints;
  private final ScheduledExecutorService scheduler;
  private final Retry.AsyncContext<Object> retry;
  private final Deadline deadline;
  private final PreparedRequest prepared;
  private final Flow.Subscriber<? super GenerateResponse> subscriber;

  private final Object lock = new Object();
  /** Messages the subscriber asked for and has not received; {@code Long.MAX_VALUE} means unbounded. */
  private long demand; // guarded by lock
  /** Messages requested from the current call and not yet received. */
  private long pending; // guarded by lock
  private ClientCall<GenerateRequest, GenerateResponse> call; // guarded by lock
  private ScheduledFuture<?> scheduledAttempt; // guarded by lock
  private boolean cancelled; // guarded by lock
  private boolean terminated; // guarded by lock

  /** Whether a message carrying tokens was delivered; from then on nothing is retried. Listener threads only. */
  private volatile boolean tokensSeen;
  /** The request the next attempt sends. */
  private volatile GenerateRequest current;
  /** The caller's OpenTelemetry context: every attempt, retries on the scheduler's thread too, sends its trace. */
  private final io.opentelemetry.context.Context traceContext = io.opentelemetry.context.Context.current();

  GenerationCall(Endpoints endpoints, ScheduledExecutorService scheduler, Retry retry, Deadline deadline,
      PreparedRequest prepared, Flow.Subscriber<? super GenerateResponse> subscriber) {
    this.endpoints = endpoints;
    this.scheduler = scheduler;
    this.retry = retry.asyncContext();
    this.deadline = deadline;
    this.prepared = prepared;
    this.subscriber = subscriber;
    this.current = prepared.request();
  }

  /** Hands the subscription to the subscriber and starts the first attempt. */
  void start() {
    subscriber.onSubscribe(this);
    attempt();
  }

  @Override
  public void request(long n) {
    if (n <= 0) {
      cancel();
      fail(new IllegalArgumentException("request(n) needs n > 0, got " + n), true);
      return;
    }
    ClientCall<GenerateRequest, GenerateResponse> c;
    int more;
    synchronized (lock) {
      if (terminated || cancelled) {
        return;
      }
      demand = demand + n < 0 ? Long.MAX_VALUE : demand + n;
      c = call;
      more = topUpLocked();
    }
    if (more > 0) {
      c.request(more);
    }
  }

  @Override
  public void cancel() {
    ClientCall<GenerateRequest, GenerateResponse> c;
    ScheduledFuture<?> f;
    synchronized (lock) {
      if (terminated || cancelled) {
        return;
      }
      cancelled = true;
      c = call;
      f = scheduledAttempt;
    }
    if (f != null) {
      f.cancel(false);
    }
    if (c != null) {
      c.cancel("cancelled by the subscriber", null);
    }
  }

  /** How many more messages to request from the current call; updates {@link #pending}. */
  private int topUpLocked() {
    if (call == null) {
      return 0;
    }
    long want = Math.min(demand, MAX_WINDOW);
    if (pending >= want) {
      return 0;
    }
    int more = (int) (want - pending);
    pending += more;
    return more;
  }

  private void attempt() {
    synchronized (lock) {
      scheduledAttempt = null;
      if (terminated || cancelled) {
        return;
      }
    }
    if (deadline.isExpired()) {
      fail(Status.DEADLINE_EXCEEDED.withDescription("deadline expired before the call could be (re)tried")
          .asRuntimeException(), false);
      return;
    }
    Endpoint endpoint;
    try {
      endpoint = endpoints.acquire();
    } catch (StatusRuntimeException e) {
      fail(e, false);
      return;
    }
    ClientCall<GenerateRequest, GenerateResponse> c = endpoint.channel().newCall(SphinxGrpc.getGenerateMethod(),
        CallOptions.DEFAULT.withDeadline(deadline));
    Metadata headers = ImageDigests.headers(prepared.digest());
    int more;
    synchronized (lock) {
      if (cancelled) {
        endpoint.breaker().releasePermission();
        return;
      }
      call = c;
      pending = 0;
      try (io.opentelemetry.context.Scope ignored = traceContext.makeCurrent()) {
        c.start(new AttemptListener(endpoint, System.nanoTime()), headers);
      }
      more = topUpLocked();
    }
    if (more > 0) {
      c.request(more);
    }
    c.sendMessage(current);
    c.halfClose();
  }

  /** Ends the stream with an error unless it already ended; {@code evenIfCancelled} for spec violations. */
  private void fail(Throwable error, boolean evenIfCancelled) {
    synchronized (lock) {
      if (terminated || (cancelled && !evenIfCancelled)) {
        return;
      }
      terminated = true;
      call = null;
    }
    subscriber.onError(error);
  }

  private static boolean hasTokens(GenerateResponse response) {
    return !response.getText().isEmpty() || response.getTokenIdsCount() > 0;
  }

  /** Listens to one attempt. */
  private final class AttemptListener extends ClientCall.Listener<GenerateResponse> {
    private final Endpoint endpoint;
    private final long startNanos;

    AttemptListener(Endpoint endpoint, long startNanos) {
      this.endpoint = endpoint;
      this.startNanos = startNanos;
    }

    @Override
    public void onMessage(GenerateResponse message) {
      synchronized (lock) {
        if (terminated || cancelled) {
          return;
        }
        pending--;
        if (demand != Long.MAX_VALUE) {
          demand--;
        }
      }
      if (hasTokens(message)) {
        tokensSeen = true;
      }
      subscriber.onNext(message);
      ClientCall<GenerateRequest, GenerateResponse> c;
      int more;
      synchronized (lock) {
        c = call;
        more = topUpLocked();
      }
      if (more > 0) {
        c.request(more);
      }
    }

    @Override
    public void onClose(Status status, Metadata trailers) {
      long elapsed = System.nanoTime() - startNanos;
      boolean wasCancelled;
      synchronized (lock) {
        wasCancelled = cancelled;
        call = null;
      }
      if (wasCancelled) {
        endpoint.breaker().releasePermission();
        return;
      }
      if (status.isOk()) {
        endpoint.breaker().onSuccess(elapsed, TimeUnit.NANOSECONDS);
        retry.onComplete();
        synchronized (lock) {
          if (terminated) {
            return;
          }
          terminated = true;
        }
        subscriber.onComplete();
        return;
      }
      StatusRuntimeException error = status.asRuntimeException(trailers);
      endpoint.breaker().onError(elapsed, TimeUnit.NANOSECONDS, error);
      if (!tokensSeen) {
        if (status.getCode() == Status.Code.NOT_FOUND && prepared.withBytes().isPresent()
            && current != prepared.withBytes().get()) {
          current = prepared.withBytes().get(); // the node does not hold the image: send its bytes
          attempt();
          return;
        }
        if (Resilience.isRetryable(error)) {
          long delayMillis = retry.onError(error);
          if (delayMillis >= 0) {
            synchronized (lock) {
              if (cancelled) {
                return;
              }
              scheduledAttempt = scheduler.schedule(GenerationCall.this::attempt, delayMillis,
                  TimeUnit.MILLISECONDS);
            }
            return;
          }
        }
      }
      fail(error, false);
    }
  }
}
