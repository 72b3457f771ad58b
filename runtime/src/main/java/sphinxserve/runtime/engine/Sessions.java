package sphinxserve.runtime.engine;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.file.Path;
import sphinxserve.runtime.bundle.BundleException;

/** Opens ONNX Runtime sessions configured from {@link RuntimeOptions}: every session of the node is made here. */
public final class Sessions {

  private Sessions() {}

  /** A session over the model file {@code model}. */
  public static OrtSession open(OrtEnvironment env, Path model, RuntimeOptions options) {
    return open(env, model.toString(), options, null);
  }

  /** A session over serialized model bytes (benchmarks build variants in memory); {@code name} for errors. */
  public static OrtSession open(OrtEnvironment env, String name, RuntimeOptions options, byte[] modelBytes) {
    return open(env, name, options, modelBytes, null);
  }

  /**
   * A session over serialized model bytes whose external-data tensors lie in {@code externalDataFolder} (the
   * bytes carry no path of their own to resolve them against); null when it has none.
   */
  static OrtSession open(OrtEnvironment env, String name, RuntimeOptions options, byte[] modelBytes, Path externalDataFolder) {
    try (OrtSession.SessionOptions session = new OrtSession.SessionOptions()) {
      session.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      session.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
      session.setIntraOpNumThreads(options.effectiveIntraOpThreads());
      session.setInterOpNumThreads(1);
      String spin = options.spinning() ? "1" : "0";
      session.addConfigEntry("session.intra_op.allow_spinning", spin);
      session.addConfigEntry("session.inter_op.allow_spinning", spin);
      if (externalDataFolder != null) {
        session.addConfigEntry("session.model_external_initializers_file_folder_path", externalDataFolder.toString());
      }
      switch (options.provider()) {
        case CPU -> { }
        case CUDA -> session.addCUDA(options.deviceId());
        case TENSORRT -> {
          session.addTensorrt(options.deviceId());
          session.addCUDA(options.deviceId());
        }
      }
      return modelBytes == null ? env.createSession(name, session) : env.createSession(modelBytes, session);
    } catch (OrtException e) {
      throw new BundleException(name + ": ONNX Runtime cannot load it: " + e.getMessage(), e);
    }
  }
}
