/**
 * The paged KV cache: off-heap storage ({@link sphinxserve.kvcache.KvCacheStorage}) and, on top of it, the
 * block pool, per-sequence block tables and the prefix cache the scheduler drives.
 *
 * <p>May import: the JDK only (no other project module). Imported by {@code runtime/} (which hands the
 * storage's buffers to ONNX Runtime) and {@code scheduler/} (which manages blocks).
 */
package sphinxserve.kvcache;
