package sphinxserve.runtime.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The safetensors reader on hand-made files: values in each dtype, and every malformed header refused by name. */
class SafeTensorsTest {

  @Test
  void readsEachDtypeAndSkipsMetadata() {
    ByteBuffer data = ByteBuffer.allocate(4 * 2 + 2 * 2 + 8).order(ByteOrder.LITTLE_ENDIAN);
    data.putFloat(1.5f).putFloat(-2f).putShort(Float.floatToFloat16(0.25f)).putShort(Float.floatToFloat16(-3f)).putLong(42);
    SafeTensors t = SafeTensors.parse(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        + "\"h\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
        + "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[12,20]},\"__metadata__\":{\"k\":\"v\"}}", data.array()), "t");
    assertEquals(List.of("a", "h", "i"), t.names().stream().sorted().toList());
    assertArrayEquals(new float[] {1.5f, -2f}, t.get("a").floats());
    assertArrayEquals(new float[] {0.25f, -3f}, t.get("h").floats());
    assertArrayEquals(new long[] {42}, t.get("i").longs());
  }

  @Test
  void widensBf16Exactly() {
    ByteBuffer data = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
    // bfloat16 is the top 16 bits of a float32: 1.5f = 0x3FC00000, -0.0078125f = 0xBC000000.
    data.putShort((short) 0x3FC0).putShort((short) 0xBC00);
    SafeTensors t = SafeTensors.parse(file("{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", data.array()), "t");
    assertArrayEquals(new float[] {1.5f, -0.0078125f}, t.get("b").floats());
  }

  @Test
  void malformedFilesAreRefusedNamingSourceAndTensor() {
    byte[] eight = new byte[8];
    refused(new byte[3], "too short");
    refused(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array(), "header length");
    refused(file("{not json", eight), "not valid JSON");
    refused(file("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", eight), "tensor w has dtype 'F8_E4M3'");
    refused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", eight), "outside the 8-byte data");
    refused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight), "8 bytes for 3 F32 elements");
    refused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight), "data_offsets");
    var e = assertThrows(BundleException.class,
        () -> SafeTensors.parse(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight), "t").get("v"));
    assertTrue(e.getMessage().contains("no tensor named v"), e.getMessage());
    var wrongType = assertThrows(BundleException.class,
        () -> SafeTensors.parse(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight), "t").get("w").longs());
    assertTrue(wrongType.getMessage().contains("not I64"), wrongType.getMessage());
  }

  private static void refused(byte[] bytes, String expected) {
    var e = assertThrows(BundleException.class, () -> SafeTensors.parse(bytes, "weights.safetensors"));
    assertTrue(e.getMessage().startsWith("weights.safetensors") && e.getMessage().contains(expected), e.getMessage());
  }

  private static byte[] file(String header, byte[] data) {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).put(h).put(data).array();
  }
}
