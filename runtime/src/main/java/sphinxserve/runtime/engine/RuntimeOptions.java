package sphinxserve.runtime.engine;

/**
 * How ONNX Runtime sessions are configured.
 *
 * @param provider the execution provider
 * @param deviceId GPU ordinal for CUDA / TensorRT
 * @param intraOpThreads threads one operator may use; 0 = one per available core
 * @param spinning whether idle ORT threads spin; off by default: spinning burns the cores the JVM's gRPC,
 *     image decoding and scheduling threads need between steps
 * @param shareCores whether the vision encoder and the decoder take turns on the cores (one ORT run at a time,
 *     images encoded one view per turn between decoder steps) instead of running at once, each with its own
 *     pool of {@code intraOpThreads} threads; on by default (see {@code OnnxModelRuntime})
 * @param wideBatchSession whether an int4 bundle's decoder also gets its wide-batch session ({@code WideBatchDecoder}:
 *     faster prefill and batches of 10+ rows for a second copy of the int4 weights and a float32 head in memory); on
 *     by default
 */
public record RuntimeOptions(ExecutionProvider provider, int deviceId, int intraOpThreads, boolean spinning, boolean shareCores,
    boolean wideBatchSession) {

  /** Where the graphs execute. */
  public enum ExecutionProvider {
    /** ONNX Runtime's CPU kernels (MLAS). */
    CPU,
    /** CUDA; needs the {@code onnxruntime_gpu} artifact and a GPU. */
    CUDA,
    /** TensorRT with CUDA fallback; needs {@code onnxruntime_gpu}, TensorRT and a GPU. */
    TENSORRT
  }

  public RuntimeOptions {
    if (intraOpThreads < 0) throw new IllegalArgumentException("intraOpThreads must be >= 0");
  }

  /** These options with the wide-batch session on (the default). */
  public RuntimeOptions(ExecutionProvider provider, int deviceId, int intraOpThreads, boolean spinning, boolean shareCores) {
    this(provider, deviceId, intraOpThreads, spinning, shareCores, true);
  }

  /** CPU, one thread per core, no spinning, vision and decoder taking turns. */
  public static RuntimeOptions cpu() {
    return new RuntimeOptions(ExecutionProvider.CPU, 0, 0, false, true);
  }

  /** These options with {@code shareCores} set to {@code value}. */
  public RuntimeOptions withShareCores(boolean value) {
    return new RuntimeOptions(provider, deviceId, intraOpThreads, spinning, value, wideBatchSession);
  }

  /** These options with {@code wideBatchSession} set to {@code value}. */
  public RuntimeOptions withWideBatchSession(boolean value) {
    return new RuntimeOptions(provider, deviceId, intraOpThreads, spinning, shareCores, value);
  }

  /** The number of intra-op threads actually used. */
  public int effectiveIntraOpThreads() {
    return intraOpThreads > 0 ? intraOpThreads : Runtime.getRuntime().availableProcessors();
  }
}
