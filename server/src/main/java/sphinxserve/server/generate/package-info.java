/**
 * The Generate request path both protocols share: {@code GenerateCalls} (validation, prompt rendering by the
 * bundle's template, context and tenant checks, the image, submission), {@code RequestValidator}, {@code
 * PromptRenderer}, the backend contract ({@code GenerationBackend}, {@code GenerationSink}, {@code
 * PreparedRequest}) and its engine implementation ({@code EngineBackend}), failures as gRPC statuses ({@code
 * RequestException}, {@code Statuses}) and the calls a drain waits for ({@code InFlightCalls}). May import {@code
 * auth}, {@code config}, {@code telemetry} and {@code image}; never {@code grpc} or {@code http}.
 */
package sphinxserve.server.generate;
