package sphinxserve.server.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.server.config.HostMemory;

/** Reading the memory limit from cgroup v1 and v2 trees laid out as Linux mounts them (in a temporary directory). */
final class HostMemoryTest {

  private static final long GIB = 1L << 30;
  private static final long PHYSICAL = 24 * GIB;
  private static final long HEAP = 6 * GIB;

  @TempDir
  Path root;

  private Path write(String relative, String text) throws IOException {
    Path file = root.resolve(relative);
    Files.createDirectories(file.getParent());
    return Files.writeString(file, text);
  }

  private HostMemory probe(String procSelfCgroup) throws IOException {
    return HostMemory.probe(root, write("proc-self-cgroup", procSelfCgroup), PHYSICAL, HEAP);
  }

  @Test
  void probe_v2ContainerWithItsOwnRoot_readsMemoryMax() throws IOException {
    Path max = write("memory.max", "8589934592\n");
    HostMemory m = probe("0::/\n");
    assertEquals(8 * GIB, m.totalBytes());
    assertEquals("cgroup " + max, m.totalSource());
    assertEquals(HEAP, m.heapMaxBytes());
  }

  @Test
  void probe_v2NestedCgroup_takesTheTightestLimitUpTheTree() throws IOException {
    write("system.slice/memory.max", "max\n");
    write("system.slice/node.service/memory.max", "4294967296\n");
    assertEquals(4 * GIB, probe("0::/system.slice/node.service\n").totalBytes());
    Path parent = write("system.slice/memory.max", "2147483648\n");
    HostMemory m = probe("0::/system.slice/node.service\n");
    assertEquals(2 * GIB, m.totalBytes(), "a parent's limit binds its children");
    assertEquals("cgroup " + parent, m.totalSource());
  }

  @Test
  void probe_v1WithoutCgroupNamespace_findsTheContainersLimitAtTheMountRoot() throws IOException {
    // Docker on cgroup v1: /proc/self/cgroup names the host path, but the container's hierarchy is mounted as root.
    write("memory/memory.limit_in_bytes", "3221225472\n");
    HostMemory m = probe("12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n");
    assertEquals(3 * GIB, m.totalBytes());
    assertTrue(m.totalSource().endsWith("memory/memory.limit_in_bytes"), m.totalSource());
  }

  @Test
  void probe_noLimit_isPhysicalMemory() throws IOException {
    // What this build machine shows: v1 "unlimited" (a huge number), a v2 hierarchy without the memory controller.
    write("memory/process_api/x/memory.limit_in_bytes", "9223372036854771712\n");
    write("memory/memory.limit_in_bytes", "9223372036854771712\n");
    HostMemory m = probe("4:memory:/process_api/x\n0::/\n");
    assertEquals(PHYSICAL, m.totalBytes());
    assertEquals("physical memory", m.totalSource());
    assertEquals(PHYSICAL, HostMemory.probe(root, root.resolve("no-such-file"), PHYSICAL, HEAP).totalBytes(), "no /proc");
  }

  @Test
  void probe_thisProcess_isPositiveAndAtMostPhysical() {
    HostMemory m = HostMemory.probe();
    long physical = ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
        .getTotalMemorySize();
    assertTrue(m.totalBytes() > 0 && m.totalBytes() <= physical, m.toString());
    assertEquals(Runtime.getRuntime().maxMemory(), m.heapMaxBytes());
  }
}
