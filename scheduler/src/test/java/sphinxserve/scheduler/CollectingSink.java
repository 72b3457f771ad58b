package sphinxserve.scheduler;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import sphinxserve.api.FinishReason;
import sphinxserve.api.TokenLogprob;
import sphinxserve.api.TokenSink;
import sphinxserve.api.Usage;

/** Test sink: records everything a request emits and lets the test wait for its finish. */
final class CollectingSink implements TokenSink {

  final StringBuilder text = new StringBuilder();
  final List<Integer> tokens = new ArrayList<>();
  final List<TokenLogprob> logprobs = new ArrayList<>();
  volatile FinishReason reason;
  volatile Usage usage;
  volatile String message;
  /** {@link System#nanoTime()} of the first output, or 0. */
  volatile long firstOutputNanos;
  /** Calls of the {@code onScheduled} / {@code onPreempted} hooks. */
  final java.util.concurrent.atomic.AtomicInteger numScheduled = new java.util.concurrent.atomic.AtomicInteger();
  final java.util.concurrent.atomic.AtomicInteger numPreempted = new java.util.concurrent.atomic.AtomicInteger();
  /** Tokens received before the first {@code onScheduled}: must stay 0. */
  volatile int numTokensBeforeScheduled;
  private final CountDownLatch done = new CountDownLatch(1);

  @Override
  public void onScheduled() {
    numScheduled.incrementAndGet();
  }

  @Override
  public void onPreempted() {
    numPreempted.incrementAndGet();
  }

  @Override
  public synchronized void onTokens(String newText, int[] tokenIds, List<TokenLogprob> newLogprobs) {
    if (firstOutputNanos == 0) firstOutputNanos = System.nanoTime();
    if (numScheduled.get() == 0) numTokensBeforeScheduled += tokenIds.length;
    text.append(newText);
    for (int id : tokenIds) tokens.add(id);
    logprobs.addAll(newLogprobs);
  }

  @Override
  public void onFinish(FinishReason finishReason, Usage finalUsage, String finalMessage) {
    reason = finishReason;
    usage = finalUsage;
    message = finalMessage;
    done.countDown();
  }

  CollectingSink await() throws InterruptedException {
    if (!done.await(60, TimeUnit.SECONDS)) throw new AssertionError("request did not finish in 60 s");
    return this;
  }

  boolean isDone() {
    return done.getCount() == 0;
  }

  synchronized int[] tokenArray() {
    return tokens.stream().mapToInt(Integer::intValue).toArray();
  }

  synchronized String textNow() {
    return text.toString();
  }
}
