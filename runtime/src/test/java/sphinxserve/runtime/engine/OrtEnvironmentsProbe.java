package sphinxserve.runtime.engine;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;

/**
 * The child JVM of {@link OrtEnvironmentsTest}: asks for the environment first from a 128 KiB-stack thread, prints
 * how it was created, then opens a session with it.
 */
public final class OrtEnvironmentsProbe {

  /** The asking thread's name. */
  static final String TINY_THREAD = "tiny-stack-asker";

  private OrtEnvironmentsProbe() {}

  public static void main(String[] args) throws Exception {
    OrtEnvironment[] env = new OrtEnvironment[1];
    Throwable[] failed = new Throwable[1];
    Thread tiny = new Thread(null, () -> {
      try {
        env[0] = OrtEnvironments.get();
      } catch (Throwable e) {
        failed[0] = e;
      }
    }, TINY_THREAD, 128L << 10);
    tiny.start();
    tiny.join();
    if (failed[0] != null) throw new AssertionError("get() failed", failed[0]);
    System.out.println("creation=" + OrtEnvironments.creation());
    byte[] model = BundleBuilder.contiguousDecoder(BundlePreset.TEST, 7).toByteArray();
    try (OrtSession session = Sessions.open(env[0], "probe", RuntimeOptions.cpu(), model)) {
      System.out.println("session opened: " + !session.getInputNames().isEmpty());
    }
  }
}
