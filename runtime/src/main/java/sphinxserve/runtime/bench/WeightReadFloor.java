package sphinxserve.runtime.bench;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import sphinxserve.runtime.graph.ExternalData;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.NodeProto;
import sphinxserve.runtime.onnx.TensorProto;

/**
 * The lower bound on a one-sequence decode step that memory sets: every matmul weight is read once per step, so a
 * step cannot take less than (bytes of those weights) / (the machine's read bandwidth). Both numbers are measured
 * here: the weights from the decoder graph, the bandwidth by streaming a buffer much larger than the caches.
 */
final class WeightReadFloor {

  /** Where the sums go, so they stay live. */
  private static volatile long sink;

  private WeightReadFloor() {}

  /**
   * Bytes a decode step reads from the weights of {@code decoderFile}: every initializer a MatMul, Gemm or
   * MatMulNBits consumes (codes and scales), read whole at any batch size. Gathered tables (the embeddings, RoPE)
   * are left out: a step reads one row of them per token.
   */
  static long matmulWeightBytes(Path decoderFile) throws IOException {
    ModelProto model;
    try (InputStream in = Files.newInputStream(decoderFile)) {
      model = ModelProto.parseFrom(in);
    }
    Map<String, TensorProto> initializers = new HashMap<>();
    for (TensorProto t : model.getGraph().getInitializerList()) initializers.put(t.getName(), t);
    Set<String> read = new HashSet<>();
    for (NodeProto node : model.getGraph().getNodeList()) {
      if (!Set.of("MatMul", "Gemm", "MatMulNBits").contains(node.getOpType())) continue;
      for (String input : node.getInputList()) if (initializers.containsKey(input)) read.add(input);
    }
    long bytes = 0;
    for (String name : read) bytes += byteSize(initializers.get(name));
    return bytes;
  }

  private static long byteSize(TensorProto t) {
    ExternalData.Slice slice = ExternalData.sliceOf(t);
    if (slice != null) return slice.length();
    if (!t.getRawData().isEmpty()) return t.getRawData().size();
    long elements = 1;
    for (long d : t.getDimsList()) elements *= d;
    return elements * (t.getDataType() == TensorProto.DataType.UINT8_VALUE ? 1 : 4);
  }

  /**
   * Read bandwidth in bytes/s: {@code threads} threads each sum their share of a 1 GiB array (8× the largest
   * caches), best of 5 passes after one to fault the pages in.
   */
  static double readBandwidth(int threads) throws Exception {
    long[] data = new long[1 << 27];
    for (int i = 0; i < data.length; i++) data[i] = i;
    double best = 0;
    try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      for (int pass = 0; pass < 6; pass++) {
        long start = System.nanoTime();
        Future<?>[] parts = new Future<?>[threads];
        for (int t = 0; t < threads; t++) {
          int from = (int) ((long) data.length * t / threads);
          int to = (int) ((long) data.length * (t + 1) / threads);
          parts[t] = pool.submit(() -> sum(data, from, to));
        }
        long total = 0;
        for (Future<?> part : parts) total += (Long) part.get();
        double seconds = (System.nanoTime() - start) / 1e9;
        sink += total; // a result nobody read would let the JIT drop the sums
        if (pass > 0) best = Math.max(best, data.length * 8.0 / seconds);
      }
    }
    return best;
  }

  /** Four independent sums, so the loop is bound by loads rather than by one add chain (C2 vectorises it). */
  private static long sum(long[] data, int from, int to) {
    long a = 0, b = 0, c = 0, d = 0;
    int i = from;
    for (; i + 3 < to; i += 4) {
      a += data[i];
      b += data[i + 1];
      c += data[i + 2];
      d += data[i + 3];
    }
    for (; i < to; i++) a += data[i];
    return a + b + c + d;
  }
}
