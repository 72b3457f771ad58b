package sphinxserve.runtime.bench;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.lang.foreign.Arena;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.Map;
import sphinxserve.runtime.graph.DecoderShape;

/**
 * Drives the contiguous-cache variant of the decoder ({@code [B, KH, C, D]} per layer, updated in place) for
 * decode steps of a fixed batch: the baseline the paged graph is compared against. Benchmark-only.
 */
final class ContiguousDecoder implements AutoCloseable {

  private final OrtEnvironment env = sphinxserve.runtime.engine.OrtEnvironments.get();
  private final OrtSession session;
  private final DecoderShape shape;
  private final int batch;
  private final int capacity;
  private final Arena arena = Arena.ofShared();
  private final Map<String, OnnxTensor> caches = new HashMap<>();
  private final Map<String, OnnxTensor> pinned = new HashMap<>();
  private final FloatBuffer logits;

  ContiguousDecoder(OrtSession session, DecoderShape shape, int batch, int capacity) throws OrtException {
    this.session = session;
    this.shape = shape;
    this.batch = batch;
    this.capacity = capacity;
    long[] dims = {batch, shape.numKvHeads(), capacity, shape.headDim()};
    long bytes = 4L * batch * shape.numKvHeads() * capacity * shape.headDim();
    for (int l = 0; l < shape.numLayers(); l++) {
      for (String kind : new String[] {"key", "value"}) {
        OnnxTensor cache = OnnxTensor.createTensor(env, arena.allocate(bytes, 64).asByteBuffer().order(ByteOrder.nativeOrder()), dims, OnnxJavaType.FLOAT);
        caches.put("past_" + kind + "." + l, cache);
        pinned.put("present_" + kind + "." + l, cache);
      }
    }
    logits = arena.allocate(4L * batch * shape.vocabSize(), 64).asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  /** One decode step: every sequence of the batch appends one token at {@code position}. */
  void decodeStep(int position, int tokenId) throws OrtException {
    LongBuffer ids = longs(batch);
    LongBuffer positions = longs(batch);
    LongBuffer slots = longs(batch);
    LongBuffer rows = longs(batch);
    for (int b = 0; b < batch; b++) {
      ids.put(b, tokenId + b);
      positions.put(b, position);
      slots.put(b, (long) b * capacity + position);
      rows.put(b, b);
    }
    try (OnnxTensor inputIds = OnnxTensor.createTensor(env, ids, new long[] {batch});
        OnnxTensor positionsT = OnnxTensor.createTensor(env, positions, new long[] {batch});
        OnnxTensor slotsT = OnnxTensor.createTensor(env, slots, new long[] {batch});
        OnnxTensor queryIndex = OnnxTensor.createTensor(env, rows, new long[] {batch, 1});
        OnnxTensor tokenIndex = OnnxTensor.createTensor(env, rows, new long[] {batch});
        OnnxTensor logitsIndex = OnnxTensor.createTensor(env, rows, new long[] {batch});
        OnnxTensor image = OnnxTensor.createTensor(env, FloatBuffer.allocate(shape.hiddenSize()), new long[] {1, shape.hiddenSize()});
        OnnxTensor logitsT = OnnxTensor.createTensor(env, logits, new long[] {batch, shape.vocabSize()})) {
      Map<String, OnnxTensor> feed = new HashMap<>(caches);
      feed.put("input_ids", inputIds);
      feed.put("positions", positionsT);
      feed.put("slot_mapping", slotsT);
      feed.put("query_index", queryIndex);
      feed.put("token_index", tokenIndex);
      feed.put("logits_index", logitsIndex);
      feed.put("image_embeds", image);
      Map<String, OnnxValue> outputs = new HashMap<>(pinned);
      outputs.put("logits", logitsT);
      session.run(feed, outputs).close();
    }
  }

  /** Logits row {@code b} of the last step. */
  float[] logits(int b) {
    float[] row = new float[shape.vocabSize()];
    logits.get(b * shape.vocabSize(), row);
    return row;
  }

  private static LongBuffer longs(int n) {
    return java.nio.ByteBuffer.allocateDirect(8 * n).order(ByteOrder.nativeOrder()).asLongBuffer();
  }

  @Override
  public void close() {
    caches.values().forEach(OnnxTensor::close);
    arena.close();
  }
}
