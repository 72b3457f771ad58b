package sphinxserve.runtime.engine;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.graph.ExternalData;
import sphinxserve.runtime.onnx.AttributeProto;
import sphinxserve.runtime.onnx.GraphProto;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.NodeProto;
import sphinxserve.runtime.onnx.TensorProto;

/**
 * A second session over an int4 decoder for runs of many token rows (prefill chunks, large decode batches): the
 * same graph and weights with its 4-bit {@code MatMulNBits} nodes at {@code accuracy_level} 0 instead of the
 * bundle's 4.
 *
 * <p>Why: ONNX Runtime 1.29's MatMulNBits kernels trade places with the number of rows M. Level 4 (activations
 * quantized to int8, integer dot products) is the fast one at M = 1 (one decoding sequence: 5.4 ms a step on the
 * bench bundle against 10.7 at level 0), but on a machine without AVX-512/VNNI it loses from M ≈ 16 on; level 0
 * dequantizes the weights block by block into float32 GEMM, whose cost per row falls with M (batch 32: 54 ms
 * against 71; prefill 1,000 tokens/s against 750; docs/PERFORMANCE.md, "Quantized weights"). A run picks the
 * session by its row count ({@link #WIDE_ROWS}). ORT has no fast float path for 8-bit weights (level 0 is 10–20×
 * slower), and at level 4 the int8 output head alone cost ~22 ms of a 32-row step: so the wide variant computes
 * an int8 head as a float32 MatMul over its dequantized weights (the same values the codes stand for; up to
 * {@link #MAX_DEQUANTIZED_BYTES}). Bundles with int8 layers get no wide session.
 *
 * <p>Cost: the second session holds its own copy of the prepacked int4 weights (the int4 layers are about a
 * quarter of their float32 size) and an int8 head in float32 (vocabulary × hidden × 4 bytes: 66 MB for the bench
 * model, 262 MB for a 32k × 2,048 one), which together stay under half of a float32 bundle.
 */
final class WideBatchDecoder {

  /**
   * Runs with at least this many token rows take the wide session. Measured on the bench bundle (int4, int8 head;
   * 2 cores, AVX2, bin/bench-decoder, decode step p50 at context 256, narrow against wide): 4 rows 12.3 against
   * 16.8 ms, 8 rows 22.0 against 22.8, 12 rows 31.4 against 27.6, 16 rows 44.3 against 33.4, 32 rows 84 against 59.
   */
  static final int WIDE_ROWS = 10;

  /**
   * The largest int8 head decoded to float32 (bytes): 1 GiB, a 128k × 2,048 vocabulary head. A larger one (a 128k
   * vocabulary over 4,096 hidden is 2.1 GB, past what one protobuf message and one Java array hold) keeps its int8
   * kernel at level 4 in the wide session too.
   */
  static final long MAX_DEQUANTIZED_BYTES = 1L << 30;

  private WideBatchDecoder() {}

  /**
   * The wide session for the decoder {@code file}, or null when the graph has no 4-bit MatMulNBits above level 0
   * (float32 and int8 bundles).
   */
  static OrtSession openIfUseful(OrtEnvironment env, Path file, RuntimeOptions options) {
    ModelProto model;
    try (InputStream in = Files.newInputStream(file)) {
      model = ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot read the decoder graph: " + e.getMessage(), e);
    }
    ModelProto wide = atLevelZero(model, file.toAbsolutePath().getParent(), MAX_DEQUANTIZED_BYTES);
    if (wide == null) return null;
    try {
      return Sessions.open(env, file.getFileName() + " (wide-batch variant)", options, wide.toByteArray(), file.toAbsolutePath().getParent());
    } catch (BundleException e) {
      throw new BundleException(e.getMessage() + " (--int4-wide-session false starts without it)", e);
    }
  }

  /**
   * The bytes a wide session over the decoder {@code file} would add to the bundle's own ({@link ModelMemory}): every
   * 4-bit MatMulNBits's codes, scales and zero points again (its prepacked copy), and the int8 head in float32 when it
   * is decoded (else its codes and scales again); 0 when {@link #openIfUseful} would open none.
   */
  static long extraBytes(Path file) {
    ModelProto model;
    try (InputStream in = Files.newInputStream(file)) {
      model = ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot read the decoder graph: " + e.getMessage(), e);
    }
    return extraBytes(model, MAX_DEQUANTIZED_BYTES);
  }

  /** As {@link #extraBytes(Path)}, for a parsed graph and a head limit. */
  static long extraBytes(ModelProto model, long maxDequantizedBytes) {
    if (!worthAWideSession(model)) return 0;
    java.util.Map<String, TensorProto> initializers = new java.util.HashMap<>();
    for (TensorProto t : model.getGraph().getInitializerList()) initializers.put(t.getName(), t);
    long bytes = 0;
    for (NodeProto node : model.getGraph().getNodeList()) {
      if (!node.getOpType().equals("MatMulNBits")) continue;
      long dequantized = intAttribute(node, "K", 0) * intAttribute(node, "N", 0) * 4;
      if (intAttribute(node, "bits", 4) == 8 && dequantized <= maxDequantizedBytes) {
        bytes += dequantized;
        continue;
      }
      for (int i = 1; i < node.getInputCount(); i++) {
        TensorProto t = initializers.get(node.getInput(i));
        if (t != null) bytes += byteSize(t);
      }
    }
    return bytes;
  }

  /** The bytes of an initializer's data: its external slice's length, or its inline bytes. */
  private static long byteSize(TensorProto t) {
    ExternalData.Slice slice = ExternalData.sliceOf(t);
    if (slice != null) return slice.length();
    if (!t.getRawData().isEmpty()) return t.getRawData().size();
    long elements = 1;
    for (long d : t.getDimsList()) elements *= d;
    return elements * 4; // typed fields: float or int32 in the graphs the builder writes
  }

  /** Whether the graph has 4-bit MatMulNBits above level 0 and at most one 8-bit one (an int4 bundle's head). */
  private static boolean worthAWideSession(ModelProto model) {
    int fourBitAboveZero = 0;
    int eightBit = 0;
    for (NodeProto node : model.getGraph().getNodeList()) {
      if (!node.getOpType().equals("MatMulNBits")) continue;
      if (intAttribute(node, "bits", 4) == 8) eightBit++;
      else if (intAttribute(node, "accuracy_level", 0) != 0) fourBitAboveZero++;
    }
    // One 8-bit matrix is an int4 bundle's head; more are int8 layers, which have no faster float path to take.
    return fourBitAboveZero > 0 && eightBit <= 1;
  }

  /**
   * {@code model} with every 4-bit MatMulNBits at accuracy level 0 and every 8-bit one (the head of an int4 bundle)
   * replaced by a MatMul over its dequantized weights; null when the graph has no 4-bit MatMulNBits above level 0
   * or has 8-bit layers. An 8-bit matrix larger than {@code maxDequantizedBytes} in float32 stays as it is. External
   * data is read from {@code folder}.
   */
  static ModelProto atLevelZero(ModelProto model, Path folder, long maxDequantizedBytes) {
    // First decide from the attributes alone: an int8 bundle must not have its layers decoded to float32 first.
    if (!worthAWideSession(model)) return null;

    GraphProto.Builder graph = model.getGraph().toBuilder();
    Set<String> replaced = new HashSet<>(); // the codes and scales a dequantized MatMul replaces
    for (int i = 0; i < graph.getNodeCount(); i++) {
      NodeProto node = graph.getNode(i);
      if (!node.getOpType().equals("MatMulNBits")) continue;
      if (intAttribute(node, "bits", 4) == 8) {
        if (intAttribute(node, "K", 0) * intAttribute(node, "N", 0) * 4 > maxDequantizedBytes) continue; // stays at level 4
        graph.setNode(i, dequantizedMatMul(graph, node, folder));
        replaced.add(node.getInput(1));
        replaced.add(node.getInput(2));
        continue;
      }
      NodeProto.Builder b = node.toBuilder();
      for (int a = 0; a < b.getAttributeCount(); a++) {
        if (b.getAttribute(a).getName().equals("accuracy_level")) b.setAttribute(a, b.getAttribute(a).toBuilder().setI(0));
      }
      graph.setNode(i, b);
    }
    for (int i = graph.getInitializerCount() - 1; i >= 0; i--) {
      if (replaced.contains(graph.getInitializer(i).getName())) graph.removeInitializer(i);
    }
    return model.toBuilder().setGraph(graph).build();
  }

  /**
   * The 8-bit MatMulNBits {@code node} as {@code MatMul(x, W)}, W {@code [K, N]} float32 decoded from its codes and
   * scales (symmetric, zero point 128: {@code w = (code − 128) · scale}), added to {@code graph} as an initializer.
   */
  private static NodeProto dequantizedMatMul(GraphProto.Builder graph, NodeProto node, Path folder) {
    if (node.getInputCount() > 3) throw new BundleException(node.getName() + ": 8-bit MatMulNBits with zero points is not expected in a bundle");
    int k = (int) intAttribute(node, "K", 0);
    int n = (int) intAttribute(node, "N", 0);
    int blockSize = (int) intAttribute(node, "block_size", 0);
    int blocks = (k + blockSize - 1) / blockSize;
    ByteBuffer codes = initializerBytes(graph, node.getInput(1), folder);
    ByteBuffer scales = initializerBytes(graph, node.getInput(2), folder).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer w = ByteBuffer.allocate(Math.multiplyExact(Math.multiplyExact(k, n), 4)).order(ByteOrder.LITTLE_ENDIAN);
    for (int col = 0; col < n; col++) {
      for (int b = 0; b < blocks; b++) {
        float scale = scales.getFloat((col * blocks + b) * 4);
        int at = (col * blocks + b) * blockSize;
        for (int i = 0; i < blockSize && b * blockSize + i < k; i++) {
          int row = b * blockSize + i;
          w.putFloat((int) (((long) row * n + col) * 4), ((codes.get(at + i) & 0xFF) - 128) * scale);
        }
      }
    }
    String name = node.getInput(1) + ".dequantized";
    graph.addInitializer(TensorProto.newBuilder().setName(name).addDims(k).addDims(n)
        .setDataType(TensorProto.DataType.FLOAT_VALUE).setRawData(ByteString.copyFrom(w.array())));
    return NodeProto.newBuilder().setName(node.getName() + "/dequantized").setOpType("MatMul")
        .addInput(node.getInput(0)).addInput(name).addOutput(node.getOutput(0)).build();
  }

  /** The raw bytes of the initializer {@code name}: inline, or its slice of the external data in {@code folder}. */
  private static ByteBuffer initializerBytes(GraphProto.Builder graph, String name, Path folder) {
    for (TensorProto t : graph.getInitializerList()) {
      if (!t.getName().equals(name)) continue;
      ExternalData.Slice slice = ExternalData.sliceOf(t);
      if (slice == null) return t.getRawData().asReadOnlyByteBuffer();
      try {
        return ByteBuffer.wrap(slice.read(folder));
      } catch (IOException e) {
        throw new BundleException(folder.resolve(slice.file()) + ": cannot read " + name + ": " + e.getMessage(), e);
      }
    }
    throw new BundleException("the decoder graph has no initializer " + name);
  }

  private static long intAttribute(NodeProto node, String name, long fallback) {
    for (AttributeProto a : node.getAttributeList()) if (a.getName().equals(name)) return a.getI();
    return fallback;
  }
}
