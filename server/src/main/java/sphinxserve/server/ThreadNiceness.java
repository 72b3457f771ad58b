package sphinxserve.server;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Lowers the CPU priority (raises the Linux nice value) of the calling thread, so that work a client can make
 * the node do in bulk — parsing a 16 MiB body, rendering a template to its budget, tokenising — yields the cores
 * to the engine's model run and the running streams whenever both want them. Java's own
 * {@link Thread#setPriority} does nothing on Linux unless the JVM runs as root with
 * {@code -XX:ThreadPriorityPolicy=1}; a thread's nice value, by contrast, may always be raised by the thread
 * itself ({@code setpriority(PRIO_PROCESS, gettid(), nice)}: on Linux each thread has its own). Elsewhere, or when
 * libc lacks either call, this logs once and leaves priorities as they are.
 */
public final class ThreadNiceness {

  private static final Logger LOG = LoggerFactory.getLogger(ThreadNiceness.class);
  private static final int PRIO_PROCESS = 0;
  private static final MethodHandle SET_PRIORITY;
  private static final MethodHandle GET_TID;
  private static final AtomicBoolean WARNED = new AtomicBoolean();

  static {
    MethodHandle set = null;
    MethodHandle tid = null;
    if (System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux")) {
      Linker linker = Linker.nativeLinker();
      SymbolLookup libc = linker.defaultLookup();
      Optional<MethodHandle> setpriority = libc.find("setpriority")
          .map(a -> linker.downcallHandle(a, FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT)));
      Optional<MethodHandle> gettid = libc.find("gettid").map(a -> linker.downcallHandle(a, FunctionDescriptor.of(JAVA_INT)));
      if (setpriority.isPresent() && gettid.isPresent()) {
        set = setpriority.get();
        tid = gettid.get();
      }
    }
    SET_PRIORITY = set;
    GET_TID = tid;
  }

  private ThreadNiceness() {}

  /**
   * Sets the calling platform thread's nice value to {@code nice} (1..19; higher yields more); true when it took.
   * Only ever lowers priority, which needs no privilege.
   */
  public static boolean lowerCurrentThread(int nice) {
    if (nice < 1 || nice > 19) throw new IllegalArgumentException("nice must be in 1..19");
    if (Thread.currentThread().isVirtual()) throw new IllegalStateException("a virtual thread has no OS priority of its own");
    if (SET_PRIORITY == null) return warnOnce("setpriority/gettid are not available on this platform");
    try {
      int tid = (int) GET_TID.invokeExact();
      int rc = (int) SET_PRIORITY.invokeExact(PRIO_PROCESS, tid, nice);
      return rc == 0 || warnOnce("setpriority returned " + rc);
    } catch (Throwable e) {
      return warnOnce(e.toString());
    }
  }

  /** The calling thread's nice value as the kernel reports it, or empty where that cannot be read (not Linux). */
  public static Optional<Integer> currentNice() {
    try {
      String stat = Files.readString(Path.of("/proc/thread-self/stat"));
      // The fields after the parenthesised command name start at field 3 (state); nice is field 19.
      String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      return Optional.of(Integer.parseInt(fields[19 - 3]));
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  /** {@code base}'s threads, each lowered to {@code nice} before it runs its first task. */
  public static ThreadFactory lowered(ThreadFactory base, int nice) {
    return task -> base.newThread(() -> {
      lowerCurrentThread(nice);
      task.run();
    });
  }

  private static boolean warnOnce(String why) {
    if (WARNED.compareAndSet(false, true)) LOG.warn("could not lower a thread's CPU priority ({}); it runs at normal priority", why);
    return false;
  }
}
