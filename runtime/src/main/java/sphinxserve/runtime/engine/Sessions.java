package sphinxserve.runtime.engine;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.file.Path;
import sphinxserve.runtime.bundle.BundleException;

/** Opens ONNX Runtime sessions configured from {@link RuntimeOptions}. */
final class Sessions {

  private Sessions() {}

  static OrtSession open(OrtEnvironment env, Path model, RuntimeOptions options) {
    try (OrtSession.SessionOptions session = new OrtSession.SessionOptions()) {
      session.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      session.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
      session.setIntraOpNumThreads(options.effectiveIntraOpThreads());
      session.setInterOpNumThreads(1);
      String spin = options.spinning() ? "1" : "0";
      session.addConfigEntry("session.intra_op.allow_spinning", spin);
      session.addConfigEntry("session.inter_op.allow_spinning", spin);
      switch (options.provider()) {
        case CPU -> { }
        case CUDA -> session.addCUDA(options.deviceId());
        case TENSORRT -> {
          session.addTensorrt(options.deviceId());
          session.addCUDA(options.deviceId());
        }
      }
      return env.createSession(model.toString(), session);
    } catch (OrtException e) {
      throw new BundleException(model + ": ONNX Runtime cannot load it: " + e.getMessage(), e);
    }
  }
}
