/**
 * Text tokenizers of a bundle: the byte-level BPE that the bundle builder trains and writes as a Hugging
 * Face {@code tokenizer.json}, and the {@link sphinxserve.api.TextTokenizer} that serves one.
 *
 * <p>Owns: training ({@code BpeTrainer}, over the shipped corpus plus a seeded synthetic expansion in
 * {@code TrainingCorpus}), serialisation ({@code TokenizerJsonWriter}), the builder's entry point
 * {@link sphinxserve.runtime.tokenizer.BundleTokenizers}, and loading a {@code tokenizer.json} through DJL's
 * Hugging Face tokenizers binding ({@link sphinxserve.runtime.tokenizer.HfTextTokenizer}).
 *
 * <p>Nothing here touches the network: DJL's native library is extracted from its jar into DJL's cache
 * directory ({@code DJL_CACHE_DIR}, default {@code ~/.djl.ai}), and DJL's telemetry call is switched off
 * (see {@link sphinxserve.runtime.tokenizer.HfTextTokenizer}).
 */
package sphinxserve.runtime.tokenizer;
