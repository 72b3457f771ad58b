package sphinxserve.server.config;

import java.util.Locale;
import sphinxserve.kvcache.KvCacheLayout;

/**
 * How many blocks the node's KV pool gets, and why: {@code --kv-blocks} when set, else as many as the
 * {@code --kv-cache-memory} budget holds (vLLM's {@code gpu_memory_utilization}, for a CPU node's memory).
 *
 * <pre>
 *   budget = bytes                                       --kv-cache-memory=4g
 *          = fraction × (total − heap max − model)       --kv-cache-memory=0.5 (the default)
 *   blocks = min(budget ÷ bytes per block, most blocks one pool holds
 *                [, max running requests × blocks of one maximum-length request: a fraction only])
 * </pre>
 *
 * <p>{@code total} is the container's memory limit or physical memory ({@link HostMemory}); the heap counts at its
 * maximum because it may grow to it; the model is what every ONNX Runtime session holds for its weights
 * ({@code OnnxModelRuntime.modelMemory}): the bundle's files, which ONNX Runtime reads into memory, plus the int4
 * wide-batch session's second copy of the 4-bit matrices and its float32 head, which no file shows. The
 * default fraction is 0.5 because, unlike vLLM, the node runs no profiling step before sizing: the other half
 * holds ONNX Runtime's activations (they grow with the batch and the context; nothing measures their peak
 * before the pool is allocated), the JVM's off-heap memory (metaspace, code, thread stacks, Netty's buffers), and the page cache; on a
 * container, going over its limit gets the node killed, and the pool is zeroed, so resident, from the start.
 *
 * <p>A fraction is also capped at what the running batch can ever hold: {@code --max-running-requests} requests
 * at the model's full context. Blocks beyond it would only enlarge the prefix cache, and a small model on a big
 * host would otherwise take (and zero, at start) gigabytes: measured, {@code embedded:sphinx-tiny} on a 24 GiB
 * machine took 8.8 GiB and 25 s to start uncapped. A budget in bytes is taken as asked.
 *
 * <p>Each layer's key and value pools are single buffers of at most 2 GiB ({@link KvCacheLayout#MAX_POOL_BYTES}):
 * a budget holding more blocks is cut to {@link KvCacheLayout#maxNumBlocks()}.
 * A pool that cannot hold one request of the model's maximum context is refused, naming the option that chose it.
 * The pool is not limited by {@code -XX:MaxDirectMemorySize} ({@code KvCacheStorage}).
 *
 * @param numBlocks blocks in the pool
 * @param poolBytes bytes the pool takes (all layers, keys and values)
 * @param budgetBytes the budget the blocks were chosen from; 0 when {@code --kv-blocks} chose them
 * @param option the option that chose the blocks: {@code kv-blocks} or {@code kv-cache-memory}
 * @param source how the budget came about, for the start log line and errors
 * @param cap why the budget's blocks were cut, for the log line; empty when they were not
 */
public record KvPoolSizing(int numBlocks, long poolBytes, long budgetBytes, String option, String source, String cap) {

  /**
   * The pool for {@code kvBlocks} (0 = from {@code memory}), with the block geometry of {@code oneBlock} (a layout of
   * the model's layers and heads with the configured block size), on {@code host}, for a model whose sessions hold
   * {@code modelBytes} (every session's weights, not only its files) and whose longest request is {@code maxContextTokens}, with at most
   * {@code maxRunningRequests} requests running at once.
   *
   * @throws IllegalArgumentException naming the option, when the pool cannot hold one maximum-length request,
   *     when {@code --kv-blocks} asks for more than a pool holds, or when nothing is left for a fraction
   */
  public static KvPoolSizing choose(int kvBlocks, KvCacheMemory memory, HostMemory host, long modelBytes, KvCacheLayout oneBlock,
      int maxContextTokens, int maxRunningRequests) {
    long blockBytes = oneBlock.bytesPerBlock();
    int maxBlocks = oneBlock.maxNumBlocks();
    int needed = Math.ceilDiv(maxContextTokens, oneBlock.blockSize());
    KvPoolSizing sizing;
    if (kvBlocks > 0) {
      if (kvBlocks > maxBlocks) {
        throw new IllegalArgumentException("kv-blocks: " + kvBlocks + " blocks of " + oneBlock.blockSize() + " tokens are more than one pool holds for this model, "
            + maxBlocks + " (a layer's keys or values are one buffer of at most 2 GiB)");
      }
      sizing = new KvPoolSizing(kvBlocks, kvBlocks * blockBytes, 0, "kv-blocks", "--kv-blocks", "");
    } else {
      long budget;
      String source;
      if (memory.isFraction()) {
        long left = host.totalBytes() - host.heapMaxBytes() - modelBytes;
        String from = "memory " + bytes(host.totalBytes()) + " (" + host.totalSource() + ") − heap max " + bytes(host.heapMaxBytes())
            + " − model " + bytes(modelBytes);
        if (left <= 0) {
          throw new IllegalArgumentException("kv-cache-memory: nothing is left for the KV cache: " + from
              + "; give it in bytes (e.g. --kv-cache-memory=1g), lower -Xmx, or give the node more memory");
        }
        budget = (long) (memory.fraction() * left);
        source = memory.fraction() + " × (" + from + ")";
      } else {
        budget = memory.bytes();
        source = "--kv-cache-memory=" + bytes(budget);
      }
      long blocks = budget / blockBytes;
      String cap = "";
      long useful = (long) maxRunningRequests * needed;
      if (memory.isFraction() && blocks > useful) {
        blocks = useful;
        cap = "capped at what " + maxRunningRequests + " running requests (--max-running-requests) hold at the model's full context";
      }
      if (blocks > maxBlocks) {
        blocks = maxBlocks;
        cap = "capped: one layer's keys or values are one buffer of at most 2 GiB";
      }
      sizing = new KvPoolSizing((int) blocks, blocks * blockBytes, budget, "kv-cache-memory", source, cap);
    }
    if (sizing.numBlocks < needed) {
      throw new IllegalArgumentException(sizing.option + ": the KV pool would hold " + sizing.numBlocks + " blocks of " + oneBlock.blockSize()
          + " tokens (" + bytes(sizing.poolBytes) + ", from " + sizing.source + "), but one request of the model's " + maxContextTokens
          + " context tokens needs " + needed + " blocks (" + bytes(needed * blockBytes) + "); raise --" + sizing.option);
    }
    return sizing;
  }

  /** {@code bytes} in the largest binary unit that keeps a whole number in front, one decimal. */
  public static String bytes(long bytes) {
    String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = bytes;
    int unit = 0;
    while (Math.abs(value) >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return unit == 0 ? bytes + " B" : String.format(Locale.ROOT, "%.1f %s", value, units[unit]);
  }
}
