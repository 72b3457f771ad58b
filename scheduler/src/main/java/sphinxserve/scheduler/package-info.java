/**
 * Continuous batching over a {@link sphinxserve.api.ModelRuntime}: so far the per-token work the engine loop
 * does for every sequence after every step (sampling, incremental detokenisation, stop strings).
 *
 * <p>May import: {@code sphinxserve.api}, {@code sphinxserve.kvcache} and the JDK (with the incubating
 * {@code jdk.incubator.vector}); never ONNX Runtime. Everything here is confined to the engine thread.
 */
package sphinxserve.scheduler;
