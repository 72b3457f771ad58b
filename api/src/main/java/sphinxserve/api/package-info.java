/**
 * Engine contracts shared by the scheduler, the runtimes and the server.
 *
 * <p>Owns: the description of a served model ({@link sphinxserve.api.ModelSpec}), the tokenizer
 * contract ({@link sphinxserve.api.TextTokenizer}), a request's sampling and stop parameters
 * ({@link sphinxserve.api.SamplingParams}, validated, with a builder), the output constraint a sampler applies as a
 * token mask ({@link sphinxserve.api.TokenConstraint}), and the {@link sphinxserve.api.ModelRuntime}
 * SPI through which the scheduler runs one batched forward step. Interfaces and records only.
 *
 * <p>May import: the JDK only. Every other project module may import this one.
 */
package sphinxserve.api;
