package sphinxserve.client;

import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Usage;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;

/**
 * The callback API over the {@link Flow.Publisher} one: subscribes with unbounded demand, forwards each message to a
 * {@link GenerationListener}, assembles the {@link Answer} and completes the handle's future.
 */
final class AnswerCollector implements Flow.Subscriber<GenerateResponse>, GenerationHandle {
  private final GenerationListener listener;
  private final CompletableFuture<Answer> answer = new CompletableFuture<>();
  private final StringBuilder text = new StringBuilder();
  private volatile Flow.Subscription subscription;
  private volatile boolean cancelled;
  private String requestId = "";
  private FinishReason finishReason = FinishReason.FINISH_REASON_UNSPECIFIED;
  private Usage usage = Usage.getDefaultInstance();
  private java.util.List<dev.sphinxserve.proto.v1.ToolCall> toolCalls = java.util.List.of();

  AnswerCollector(GenerationListener listener) {
    this.listener = listener;
  }

  @Override
  public void onSubscribe(Flow.Subscription s) {
    subscription = s;
    if (cancelled) {
      s.cancel();
    } else {
      s.request(Long.MAX_VALUE);
    }
  }

  @Override
  public void onNext(GenerateResponse response) {
    if (!response.getRequestId().isEmpty() && requestId.isEmpty()) {
      requestId = response.getRequestId();
    }
    text.append(response.getText());
    if (response.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
      finishReason = response.getFinishReason();
    }
    if (response.hasUsage()) {
      usage = response.getUsage();
    }
    if (response.getToolCallsCount() > 0) {
      toolCalls = response.getToolCallsList();
    }
    listener.onResponse(response);
  }

  @Override
  public void onError(Throwable error) {
    try {
      listener.onError(error);
    } finally {
      answer.completeExceptionally(error);
    }
  }

  @Override
  public void onComplete() {
    Answer a = new Answer(requestId, text.toString(), finishReason, usage, toolCalls);
    try {
      listener.onComplete(a);
    } finally {
      answer.complete(a);
    }
  }

  @Override
  public void cancel() {
    cancelled = true;
    Flow.Subscription s = subscription;
    if (s != null) {
      s.cancel();
    }
    answer.completeExceptionally(new CancellationException("generation cancelled"));
  }

  @Override
  public CompletableFuture<Answer> answer() {
    return answer;
  }
}
