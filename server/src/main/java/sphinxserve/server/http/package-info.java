/**
 * The HTTP face: the OpenAI-compatible API ({@code OpenAiHttpServer} on Netty's HTTP/1.1; {@code OpenAiRequests} and
 * {@code OpenAiResponses} translate OpenAI's JSON to and from the gRPC messages, per choice; {@code OpenAiConstraints}
 * reads {@code response_format} and vLLM's {@code structured_outputs}, {@code OpenAiTools} the tool fields, and each
 * choice's answer is parsed for tool calls as it streams) and the chat page's
 * files ({@code WebPage}, from {@code /sphinxserve/server/web/} in the jar). The transport is built for hostile
 * clients: {@code HeadGuard} decides all a request head decides before the body is read ({@code HostPolicy} for
 * Host and Origin), {@code ExchangeQueue} answers one request at a time in order with idle/read timeouts,
 * {@code GenerateExchange} parses and starts choices on a worker executor, and {@code HttpSink} formats and writes
 * off the engine thread, only while the client keeps up. A thin adapter over {@code generate.GenerateCalls}, with
 * the same credentials, limits and log lines as gRPC.
 */
package sphinxserve.server.http;
