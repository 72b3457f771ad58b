package sphinxserve.runtime.engine;

/**
 * The memory a model's ONNX Runtime sessions hold for their weights, session by session: what the KV pool's sizing
 * must leave to the model ({@code KvPoolSizing} in the server). From the bundle's files and graphs, not measured:
 * ONNX Runtime reads each graph and its external data into memory (memory-mapped when aligned) and keeps prepacked
 * copies of matrices it repacks; the wide-batch session ({@link WideBatchDecoder}) prepacks its own copy of every
 * 4-bit matrix and holds the int8 head as float32, which the files do not show (+0.84 GB at 1.1 B parameters,
 * docs/PERFORMANCE.md "Memory").
 *
 * @param decoderBytes the decoder's graph file and its external data
 * @param wideDecoderBytes what the wide-batch session adds: its 4-bit matrices' codes, scales and zero points again,
 *     and the int8 head in float32 ({@code K × N × 4}) or as it is when too large to decode; 0 without that session
 * @param visionBytes the vision encoder's graph file (and its external data); 0 for a text-only model
 * @param tokenizerBytes the tokenizer's file, which the tokenizer library parses into memory
 */
public record ModelMemory(long decoderBytes, long wideDecoderBytes, long visionBytes, long tokenizerBytes) {

  /** Every session's weights together. */
  public long totalBytes() {
    return decoderBytes + wideDecoderBytes + visionBytes + tokenizerBytes;
  }
}
