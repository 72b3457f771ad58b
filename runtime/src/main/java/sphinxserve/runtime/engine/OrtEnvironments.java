package sphinxserve.runtime.engine;

import ai.onnxruntime.OrtEnvironment;

/**
 * The process's one ONNX Runtime environment, created on a thread of its own with a large stack, whichever thread
 * asks first. Every caller in the project gets it here, never from {@code OrtEnvironment.getEnvironment()}
 * (a test scans the sources for that).
 *
 * <p>Why: the first touch of ONNX Runtime loads its native libraries and creates the environment, which runs
 * CPU-feature detection and platform set-up on the calling thread's stack. On an Intel Xeon VM (AVX-512, VNNI,
 * AMX reported) {@code bin/bench-engine} died with SIGSEGV (exit 139, no hs_err file) inside
 * {@code OrtEnvironment.createHandle} every time with the launcher's default 1 MiB main-thread stack and ran
 * with {@code -Xss8m}, while the node, which already opened its model on a 64 MiB thread, started even at
 * {@code -Xss256k}. A native stack overflow gives the JVM no chance to throw {@link StackOverflowError}; so the
 * stack the set-up runs on must not depend on which entry point (node, bench, build command, test, JMH fork)
 * happens to touch the runtime first.
 */
public final class OrtEnvironments {

  /** Stack of the thread that creates the environment: 16 MiB, twice what was seen to suffice ({@code -Xss8m}). */
  public static final long CREATOR_STACK_BYTES = 16L << 20;

  /** Name of the thread that creates the environment. */
  public static final String CREATOR_THREAD_NAME = "sphinx-ort-environment";

  /**
   * Where the environment was created: the creating thread's name and requested stack, and the thread that asked.
   *
   * @param threadName the thread that created it
   * @param stackBytes the stack size that thread was started with
   * @param requestedBy the thread whose call first asked for it
   */
  public record Creation(String threadName, long stackBytes, String requestedBy) {}

  private static volatile OrtEnvironment environment;
  private static volatile Creation creation;

  private OrtEnvironments() {}

  /** The environment, created on first use on a {@value #CREATOR_STACK_BYTES}-byte-stack thread; any thread. */
  public static OrtEnvironment get() {
    OrtEnvironment env = environment;
    if (env != null) return env;
    synchronized (OrtEnvironments.class) {
      if (environment == null) environment = createOnLargeStack();
      return environment;
    }
  }

  /** How the environment was created; null before the first {@link #get}. */
  public static Creation creation() {
    return creation;
  }

  private static OrtEnvironment createOnLargeStack() {
    String caller = Thread.currentThread().getName();
    OrtEnvironment[] created = new OrtEnvironment[1];
    Throwable[] failed = new Throwable[1];
    Thread creator = Thread.ofPlatform().name(CREATOR_THREAD_NAME).stackSize(CREATOR_STACK_BYTES).daemon().unstarted(() -> {
      try {
        created[0] = OrtEnvironment.getEnvironment(); // the one call in the project (OrtEnvironmentsTest)
      } catch (Throwable e) { // an UnsatisfiedLinkError too: the caller must see why
        failed[0] = e;
      }
    });
    creator.start();
    boolean interrupted = false;
    while (true) {
      try {
        creator.join();
        break;
      } catch (InterruptedException e) { // the environment must exist before this returns, whoever asked
        interrupted = true;
      }
    }
    if (interrupted) Thread.currentThread().interrupt();
    if (failed[0] instanceof RuntimeException e) throw e;
    if (failed[0] instanceof Error e) throw e;
    if (failed[0] != null) throw new IllegalStateException("cannot create the ONNX Runtime environment: " + failed[0], failed[0]);
    creation = new Creation(CREATOR_THREAD_NAME, CREATOR_STACK_BYTES, caller);
    return created[0];
  }
}
