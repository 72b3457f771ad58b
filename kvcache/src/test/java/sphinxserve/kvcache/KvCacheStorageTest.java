package sphinxserve.kvcache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteOrder;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class KvCacheStorageTest {

  @RegisterExtension final KvFixture kv = new KvFixture();

  @Test
  void writeSlot_thenCopyBlock_copiesTheBytes() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 3));
    float[] keys = KvFixture.slotFloats(storage.layout(), 42, false);
    float[] values = KvFixture.slotFloats(storage.layout(), 42, true);
    storage.writeSlot(0, 2, keys, values);
    storage.copyBlock(0, 1);
    assertArrayEquals(storage.blockBytes(0, 4), storage.blockBytes(1, 4));
    assertFalse(Arrays.equals(storage.blockBytes(0, 4), storage.blockBytes(2, 4)));
  }

  @Test
  void writeSlot_landsInNativeOrderKeyBuffer() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 3));
    float[] keys = new float[KvFixture.NUM_LAYERS * KvFixture.NUM_KV_HEADS * KvFixture.HEAD_DIM];
    keys[0] = 1.5f;
    storage.writeSlot(2, 1, keys, keys.clone());
    var buffer = storage.keyBuffer(0);
    assertArrayEquals(new Object[] {ByteOrder.nativeOrder(), 1.5f},
        new Object[] {buffer.order(), buffer.getFloat((int) storage.layout().byteOffset(0, 2, 1))});
  }

  @Test
  void writeSlot_wrongLength_throws() {
    KvCacheStorage storage = kv.storage(KvFixture.layout(4, 3));
    assertThrows(IllegalArgumentException.class, () -> storage.writeSlot(0, 0, new float[1], new float[1]));
    assertThrows(IndexOutOfBoundsException.class, () -> storage.writeSlot(0, 4, new float[16], new float[16]));
  }
}
