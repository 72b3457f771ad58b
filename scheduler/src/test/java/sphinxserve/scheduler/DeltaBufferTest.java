package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import sphinxserve.api.FinishReason;
import sphinxserve.api.Usage;

class DeltaBufferTest {

  private final AtomicInteger signals = new AtomicInteger();
  private final DeltaBuffer buffer = new DeltaBuffer(signals::incrementAndGet);

  @Test
  void poll_coalescesEverythingPendingIntoOneDelta() {
    buffer.onTokens("Hel", new int[] {1}, List.of());
    buffer.onTokens("lo", new int[] {2, 3}, List.of());
    DeltaBuffer.Delta delta = buffer.poll();
    assertEquals("Hello", delta.text());
    assertArrayEquals(new int[] {1, 2, 3}, delta.tokenIds());
    assertFalse(delta.isFinal());
    assertNull(buffer.poll(), "nothing pending");
  }

  @Test
  void onTokens_signalsOnlyWhenTheBufferTurnsNonEmpty() {
    buffer.onTokens("a", new int[] {1}, List.of());
    buffer.onTokens("b", new int[] {2}, List.of());
    assertEquals(1, signals.get(), "one drain covers both");
    buffer.poll();
    buffer.onTokens("c", new int[] {3}, List.of());
    assertEquals(2, signals.get());
  }

  @Test
  void poll_deliversTheFinishWithTheLastTextThenNothing() {
    buffer.onTokens("end", new int[] {9}, List.of());
    Usage usage = new Usage(3, 1, 0, 0, 0.1, 0.2, 0);
    buffer.onFinish(FinishReason.STOP, usage, null);
    DeltaBuffer.Delta last = buffer.poll();
    assertEquals("end", last.text());
    assertTrue(last.isFinal());
    assertEquals(usage, last.usage());
    assertTrue(buffer.isDone());
    assertNull(buffer.poll());
  }
}
