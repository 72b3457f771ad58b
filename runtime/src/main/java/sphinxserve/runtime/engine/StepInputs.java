package sphinxserve.runtime.engine;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.List;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.SequenceStep;

/**
 * Turns a ragged batch of {@link SequenceStep}s into the decoder's index tensors (docs/BUNDLE.md), in
 * reusable direct buffers that ONNX Runtime wraps without copying. Grows its buffers geometrically and never
 * shrinks them, so a steady workload allocates nothing per step. Confined to the engine thread.
 *
 * <pre>
 * batch: seq0 prefills 3 tokens at 5..7, seq1 decodes 1 token at 9        (blockSize 4)
 * input_ids    [a b c | d]          positions [5 6 7 | 9]
 * slot_mapping [t0[1]*4+1, t0[1]*4+2, t0[1]*4+3 | t1[2]*4+1]
 * query_index  [[0 1 2], [3 3 3]]   (B × Q, padding repeats the sequence's first token)
 * token_index  [0 1 2 | 3]          (row b·Q + j of the padded queries)
 * logits_index [2, 3]               (the last token of each sequence that wants logits)
 * </pre>
 */
final class StepInputs {

  private final int vocabSize;
  private final int hiddenSize;
  private final int blockSize;

  LongBuffer inputIds = longs(256);
  LongBuffer positions = longs(256);
  LongBuffer slotMapping = longs(256);
  LongBuffer tokenIndex = longs(256);
  LongBuffer queryIndex = longs(256);
  LongBuffer blockTables = longs(256);
  LongBuffer logitsIndex = longs(64);
  FloatBuffer imageEmbeds;
  private final float[] zeroRow;

  int numTokens;
  int numSequences;
  int maxChunk;
  int maxBlocks;
  int numImageRows;
  int numLogits;

  StepInputs(int vocabSize, int hiddenSize, int blockSize) {
    this.vocabSize = vocabSize;
    this.hiddenSize = hiddenSize;
    this.blockSize = blockSize;
    this.imageEmbeds = floats(hiddenSize);
    this.zeroRow = new float[hiddenSize];
  }

  /** Fills every buffer for {@code batch}; throws IllegalArgumentException if a block table is too short. */
  void fill(List<SequenceStep> batch) {
    numSequences = batch.size();
    numTokens = 0;
    maxChunk = 0;
    maxBlocks = 0;
    numImageRows = 0;
    numLogits = 0;
    for (SequenceStep step : batch) {
      int needed = (step.endPosition() + blockSize - 1) / blockSize;
      if (step.blockTable().length < needed) {
        throw new IllegalArgumentException("block table of " + step.blockTable().length + " blocks cannot hold positions up to " + (step.endPosition() - 1) + " (needs " + needed + ")");
      }
      numTokens += step.numTokens();
      maxChunk = Math.max(maxChunk, step.numTokens());
      maxBlocks = Math.max(maxBlocks, needed);
      numImageRows += imageOverlap(step);
      if (step.wantLogits()) numLogits++;
    }
    inputIds = ensure(inputIds, numTokens);
    positions = ensure(positions, numTokens);
    slotMapping = ensure(slotMapping, numTokens);
    tokenIndex = ensure(tokenIndex, numTokens);
    queryIndex = ensure(queryIndex, numSequences * maxChunk);
    blockTables = ensure(blockTables, numSequences * maxBlocks);
    logitsIndex = ensure(logitsIndex, Math.max(1, numLogits));
    // The graph always gathers from image_embeds; give it one zero row when this step has no image rows.
    int imageRows = Math.max(1, numImageRows);
    if (imageEmbeds.capacity() < imageRows * hiddenSize) imageEmbeds = floats(grow(imageEmbeds.capacity(), imageRows * hiddenSize));
    if (numImageRows == 0) imageEmbeds.put(0, zeroRow);

    int token = 0;
    int imageRow = 0;
    int logitsRow = 0;
    for (int b = 0; b < numSequences; b++) {
      SequenceStep step = batch.get(b);
      int[] ids = step.tokenIds();
      int[] table = step.blockTable();
      int start = step.startPosition();
      ImageEmbeddings image = step.image();
      int imageFrom = image == null ? 0 : Math.max(start, step.imageStart());
      int imageTo = image == null ? 0 : Math.min(step.endPosition(), step.imageStart() + image.numTokens());
      int first = token;
      for (int j = 0; j < ids.length; j++, token++) {
        int position = start + j;
        long id = ids[j];
        if (position >= imageFrom && position < imageTo) {
          int row = position - step.imageStart();
          imageEmbeds.put(imageRow * hiddenSize, image.data(), row * hiddenSize, hiddenSize);
          id = vocabSize + imageRow++;
        }
        inputIds.put(token, id);
        positions.put(token, position);
        slotMapping.put(token, (long) table[position / blockSize] * blockSize + position % blockSize);
        tokenIndex.put(token, (long) b * maxChunk + j);
      }
      for (int j = 0; j < maxChunk; j++) {
        queryIndex.put(b * maxChunk + j, j < ids.length ? first + j : first);
      }
      int needed = (step.endPosition() + blockSize - 1) / blockSize;
      for (int i = 0; i < maxBlocks; i++) {
        blockTables.put(b * maxBlocks + i, i < needed ? table[i] : 0);
      }
      if (step.wantLogits()) logitsIndex.put(logitsRow++, token - 1);
    }
    if (numLogits == 0) logitsIndex.put(0, 0); // one throw-away row rather than an empty tensor
  }

  /** Logits rows the graph computes: at least one. */
  int logitsRows() {
    return Math.max(1, numLogits);
  }

  private static int imageOverlap(SequenceStep step) {
    if (step.image() == null) return 0;
    int from = Math.max(step.startPosition(), step.imageStart());
    int to = Math.min(step.endPosition(), step.imageStart() + step.image().numTokens());
    return Math.max(0, to - from);
  }

  private static LongBuffer ensure(LongBuffer buffer, int needed) {
    return buffer.capacity() >= needed ? buffer : longs(grow(buffer.capacity(), needed));
  }

  private static int grow(int capacity, int needed) {
    return Math.max(needed, capacity * 2);
  }

  static LongBuffer longs(int count) {
    return ByteBuffer.allocateDirect(count * Long.BYTES).order(ByteOrder.nativeOrder()).asLongBuffer();
  }

  static FloatBuffer floats(int count) {
    return ByteBuffer.allocateDirect(count * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }
}
