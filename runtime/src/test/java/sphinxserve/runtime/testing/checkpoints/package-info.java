/**
 * Test support for real-model loading: random LLaMA checkpoints and an independent reference forward pass.
 *
 * <ul>
 *   <li>{@link sphinxserve.runtime.testing.checkpoints.RandomCheckpoints} writes a seeded small model as a
 *       Hugging Face {@code LlamaForCausalLM} folder ({@code writeHf}) or the same model in Meta layout
 *       ({@code writeMeta});
 *   <li>{@link sphinxserve.runtime.testing.checkpoints.ReferenceLlama} loads either layout straight from the
 *       safetensors files and computes logits in double precision, sharing no code with the production loader or
 *       graph;
 *   <li>{@link sphinxserve.runtime.testing.checkpoints.CheckpointCorruptions} damages a folder for error tests;
 *   <li>{@link sphinxserve.runtime.testing.checkpoints.RawSafetensors} is the test-only safetensors reader/writer
 *       both use.
 * </ul>
 *
 * <p>Typical use against an engine:
 * <pre>{@code
 * Path hf = RandomCheckpoints.builder().numKvHeads(2).dtype(Dtype.BF16).seed(3).build().writeHf(dir);
 * ReferenceLlama reference = ReferenceLlama.load(hf);
 * float[] expected = reference.lastLogitsAsFloats(prompt);   // or logits(prompt)[t] for every position
 * int[] continuation = reference.greedy(prompt, 8);
 * }</pre>
 */
package sphinxserve.runtime.testing.checkpoints;
