package sphinxserve.api;

/**
 * Token ids with a fixed meaning in a bundle's vocabulary.
 *
 * @param bos begins every sequence
 * @param eos ends an answer
 * @param pad padding, never generated
 * @param imagePlaceholder fills every image position of a prompt; the runtime replaces its embedding with
 *     the image's rows
 */
public record SpecialTokens(int bos, int eos, int pad, int imagePlaceholder) {}
