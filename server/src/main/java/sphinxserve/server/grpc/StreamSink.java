package sphinxserve.server.grpc;

import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateResponse;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import sphinxserve.server.generate.GenerationSink;

/**
 * The {@link GenerationSink} of one Generate call: the engine emits into a buffer, gRPC writes from it.
 *
 * <p>How: {@link #emit} and {@link #fail} only enqueue and schedule a drain on {@code executor}, so the
 * engine thread never calls {@code onNext}. A drain writes while the call {@code isReady()} (gRPC flow
 * control) and stops otherwise; the on-ready handler schedules the next drain, which coalesces everything
 * queued meanwhile into one message (a slow client receives fewer, larger deltas). A work-in-progress counter
 * keeps drains one at a time, which also serialises the observer's calls as gRPC requires. The buffer holds
 * at most one message per generated token (max_tokens bounds it) and is coalesced at each drain; a client
 * too slow to keep up is one the deadline ends. Cancellation flips {@link #isCancelled} and runs {@code onCancel}
 * (the backend's abort).
 */
final class StreamSink implements GenerationSink {

  private final ServerCallStreamObserver<GenerateResponse> call;
  private final Executor executor;
  private final Queue<Object> pending = new ConcurrentLinkedQueue<>(); // GenerateResponse, or Status at the end
  private final AtomicInteger wip = new AtomicInteger();
  private volatile boolean cancelled;
  private volatile boolean done;
  private volatile Runnable onCancel = () -> {};
  private final Runnable onEnd;
  private final java.util.concurrent.atomic.AtomicBoolean ended = new java.util.concurrent.atomic.AtomicBoolean();

  /**
   * Attaches to {@code call}; must run inside the gRPC handler (gRPC freezes the handlers after it returns).
   * {@code onEnd} runs once when the call ends: completed, failed or cancelled.
   */
  StreamSink(ServerCallStreamObserver<GenerateResponse> call, Executor executor, Runnable onEnd) {
    this.call = call;
    this.executor = executor;
    this.onEnd = onEnd;
    call.setOnReadyHandler(this::schedule);
    call.setOnCancelHandler(() -> {
      cancelled = true;
      onCancel.run();
      end();
    });
  }

  private void end() {
    if (ended.compareAndSet(false, true)) onEnd.run();
  }

  /** Runs {@code action} when the client cancels or the deadline passes (not if that already happened). */
  void onCancel(Runnable action) {
    this.onCancel = action;
  }

  @Override
  public void emit(GenerateResponse response) {
    pending.add(response);
    schedule();
  }

  @Override
  public void fail(Status status) {
    pending.add(status);
    schedule();
  }

  @Override
  public boolean isCancelled() {
    return cancelled;
  }

  private void schedule() {
    if (wip.getAndIncrement() == 0) executor.execute(this::drain);
  }

  /**
   * Merges the responses queued behind {@code first} into it: a client that fell behind gets one larger delta
   * instead of a backlog of small ones. The result is final if a merged response was.
   */
  private GenerateResponse coalesce(GenerateResponse first) {
    if (!(pending.peek() instanceof GenerateResponse)) return first;
    GenerateResponse.Builder merged = first.toBuilder();
    while (merged.getFinishReason() == FinishReason.FINISH_REASON_UNSPECIFIED && pending.peek() instanceof GenerateResponse next) {
      pending.poll();
      merged.setText(merged.getText() + next.getText()).addAllTokenIds(next.getTokenIdsList()).addAllLogprobs(next.getLogprobsList());
      if (next.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) merged.setFinishReason(next.getFinishReason()).setUsage(next.getUsage());
    }
    return merged.build();
  }

  private void drain() {
    do {
      while (!done && !cancelled) {
        Object next = pending.peek();
        if (next == null) break;
        if (next instanceof GenerateResponse && !call.isReady()) break; // resumes from the on-ready handler
        pending.poll();
        if (next instanceof GenerateResponse r) next = coalesce(r);
        switch (next) {
          case GenerateResponse r -> {
            call.onNext(r);
            if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
              done = true;
              call.onCompleted();
              end();
            }
          }
          case Status s -> {
            done = true;
            call.onError(s.asRuntimeException());
            end();
          }
          default -> throw new IllegalStateException("unexpected " + next);
        }
      }
      if (done || cancelled) pending.clear();
    } while (wip.decrementAndGet() != 0);
  }
}
