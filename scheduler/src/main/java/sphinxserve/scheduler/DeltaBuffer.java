package sphinxserve.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import sphinxserve.api.FinishReason;
import sphinxserve.api.TokenLogprob;
import sphinxserve.api.TokenSink;
import sphinxserve.api.Usage;

/**
 * A {@link TokenSink} that never blocks the engine: output accumulates in one pending delta (coalesced — a
 * consumer that falls behind receives fewer, larger deltas, never a growing queue of small ones) until the
 * consumer {@link #poll}s it, e.g. from gRPC's on-ready handler. {@code onAvailable} is called (on the engine
 * thread) whenever the buffer goes from empty to non-empty or finishes; it must only schedule a drain.
 *
 * <p>Memory is bounded by the request's own output ({@code max_tokens}): coalescing keeps one pending delta.
 */
public final class DeltaBuffer implements TokenSink {

  /** What a consumer receives: coalesced output, and the finish once everything before it was taken. */
  public record Delta(String text, int[] tokenIds, List<TokenLogprob> logprobs, FinishReason finishReason, Usage usage, String message) {

    /** Whether this is the request's last delta. */
    public boolean isFinal() {
      return finishReason != null;
    }
  }

  private final Runnable onAvailable;
  private final StringBuilder text = new StringBuilder();
  private int[] tokenIds = new int[16];
  private int numTokenIds;
  private final List<TokenLogprob> logprobs = new ArrayList<>();
  private FinishReason finishReason;
  private Usage usage;
  private String message;
  private boolean delivered;

  public DeltaBuffer(Runnable onAvailable) {
    this.onAvailable = onAvailable;
  }

  @Override
  public void onTokens(String newText, int[] newTokenIds, List<TokenLogprob> newLogprobs) {
    boolean wasEmpty;
    synchronized (this) {
      wasEmpty = isEmpty();
      text.append(newText);
      if (numTokenIds + newTokenIds.length > tokenIds.length) tokenIds = Arrays.copyOf(tokenIds, 2 * (numTokenIds + newTokenIds.length));
      System.arraycopy(newTokenIds, 0, tokenIds, numTokenIds, newTokenIds.length);
      numTokenIds += newTokenIds.length;
      logprobs.addAll(newLogprobs);
    }
    if (wasEmpty) onAvailable.run();
  }

  @Override
  public void onFinish(FinishReason reason, Usage finalUsage, String finalMessage) {
    synchronized (this) {
      finishReason = reason;
      usage = finalUsage;
      message = finalMessage;
    }
    onAvailable.run();
  }

  /** Takes everything pending as one delta, or null when nothing is pending. After the final delta, null. */
  public synchronized Delta poll() {
    if (delivered || (isEmpty() && finishReason == null)) return null;
    Delta delta = new Delta(text.toString(), Arrays.copyOf(tokenIds, numTokenIds), List.copyOf(logprobs), finishReason, usage, message);
    text.setLength(0);
    numTokenIds = 0;
    logprobs.clear();
    delivered = finishReason != null;
    return delta;
  }

  /** Whether the final delta was taken. */
  public synchronized boolean isDone() {
    return delivered;
  }

  private boolean isEmpty() {
    return text.isEmpty() && numTokenIds == 0;
  }
}
