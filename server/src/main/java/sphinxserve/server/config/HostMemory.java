package sphinxserve.server.config;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The memory this process may use, as the KV pool's sizing sees it: the container's or host's total, and the most
 * the JVM heap may take.
 *
 * <p>The total is the tightest cgroup memory limit over the process's cgroup and its ancestors (cgroup v2
 * {@code memory.max}, v1 {@code memory.limit_in_bytes}), since in a container exceeding it gets the process
 * killed; without one it is physical memory. Walking up from the path {@code /proc/self/cgroup} names finds the
 * limit both where the container sees its own cgroup as the root and where it sees the host's hierarchy (v1
 * without a cgroup namespace; a systemd slice on a host). Controllers mounted elsewhere than
 * {@code /sys/fs/cgroup} are not looked for.
 *
 * @param totalBytes the cgroup memory limit when there is one, else physical memory
 * @param totalSource where {@code totalBytes} came from: the cgroup file, or {@code "physical memory"}
 * @param heapMaxBytes the most the heap may grow to ({@code -Xmx}, {@code -XX:MaxRAMPercentage}); the KV pool
 *     cannot count on that memory even while the heap is smaller
 */
public record HostMemory(long totalBytes, String totalSource, long heapMaxBytes) {

  /** Where Linux mounts the cgroup hierarchies. */
  static final Path CGROUP_ROOT = Path.of("/sys/fs/cgroup");

  /** This process's memory, read from the running system. */
  public static HostMemory probe() {
    long physical = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
    return probe(CGROUP_ROOT, Path.of("/proc/self/cgroup"), physical, Runtime.getRuntime().maxMemory());
  }

  /**
   * As {@link #probe()}, from the cgroup files under {@code cgroupRoot}, the process's cgroup membership file
   * ({@code /proc/self/cgroup} format) and the given physical memory and heap maximum.
   */
  public static HostMemory probe(Path cgroupRoot, Path procSelfCgroup, long physicalBytes, long heapMaxBytes) {
    long total = physicalBytes;
    String source = "physical memory";
    for (String line : lines(procSelfCgroup)) {
      // hierarchy-id:controllers:path; v2 has id 0 and no controllers, v1's memory hierarchy lists "memory".
      String[] parts = line.split(":", 3);
      if (parts.length != 3) continue;
      Path base;
      String file;
      if (parts[0].equals("0") && parts[1].isEmpty()) {
        base = cgroupRoot;
        file = "memory.max";
      } else if (List.of(parts[1].split(",")).contains("memory")) {
        base = cgroupRoot.resolve("memory");
        file = "memory.limit_in_bytes";
      } else {
        continue;
      }
      Path dir = base.resolve(parts[2].replaceFirst("^/+", "")).normalize();
      for (; dir != null && dir.startsWith(base); dir = dir.getParent()) {
        long limit = limit(dir.resolve(file));
        if (limit > 0 && limit < total) {
          total = limit;
          source = "cgroup " + dir.resolve(file);
        }
      }
    }
    return new HostMemory(total, source, heapMaxBytes);
  }

  /** The limit a cgroup file holds; 0 for none ({@code max}, missing, unreadable, or v1's "unlimited" huge value). */
  private static long limit(Path file) {
    if (!Files.isRegularFile(file)) return 0;
    try {
      String text = Files.readString(file, StandardCharsets.US_ASCII).trim();
      return text.equals("max") ? 0 : Long.parseLong(text);
    } catch (IOException | NumberFormatException e) {
      return 0;
    }
  }

  private static List<String> lines(Path file) {
    try {
      return Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return List.of(); // not Linux, or no /proc: physical memory
    }
  }
}
