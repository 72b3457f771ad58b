package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** How a step's prefill chunks fill its room: real tokens, and padded ones under a latency target. */
class PrefillRoomTest {

  @Test
  void tokensOnly_chunksOfAnyLengthUpToTheBudget() {
    PrefillRoom room = PrefillRoom.ofTokens(512);
    assertEquals(500, room.nextChunk(500));
    room.take(500);
    assertEquals(12, room.nextChunk(100), "a short chunk beside a long one: only real tokens count");
    room.take(12);
    assertTrue(room.isFull());
  }

  @Test
  void padded_aSecondChunkGetsHalfAndNeverMakesTheRunLonger() {
    PrefillRoom room = PrefillRoom.ofTokensAndPadded(500, 120);
    assertEquals(10, room.nextChunk(10)); // the tail of one prompt
    room.take(10);
    assertEquals(60, room.nextChunk(1400), "two chunks padded to the longest: 2 × 60 = 120");
    room.take(60);
    assertEquals(0, room.nextChunk(1400), "a third would need 3 × 60");
    assertTrue(room.isFull());
  }

  @Test
  void padded_aLongFirstChunkLeavesNoRoomForAnother() {
    PrefillRoom room = PrefillRoom.ofTokensAndPadded(500, 120);
    assertEquals(120, room.nextChunk(1400));
    room.take(100);
    assertTrue(room.isFull(), "a second chunk would pad to 2 × 100");
    PrefillRoom shortOnes = PrefillRoom.ofTokensAndPadded(500, 120);
    for (int i = 0; i < 8; i++) {
      assertFalse(shortOnes.isFull(), "chunk " + i);
      shortOnes.take(shortOnes.nextChunk(15)); // eight 15-token prompts: 8 × 15 = 120
    }
    assertTrue(shortOnes.isFull());
  }
}
