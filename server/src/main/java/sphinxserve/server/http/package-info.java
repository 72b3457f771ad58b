/**
 * The HTTP face: the OpenAI-compatible API ({@code OpenAiHttpServer} on Netty's HTTP/1.1 codec; {@code
 * OpenAiRequests} and {@code OpenAiResponses} translate OpenAI's JSON to and from the gRPC messages; {@code
 * HttpSink} streams Server-Sent Events) and the chat page's files ({@code WebPage}, from {@code
 * /sphinxserve/server/web/} in the jar). A thin adapter over {@code generate.GenerateCalls}, with the same
 * credentials, limits and log lines as gRPC.
 */
package sphinxserve.server.http;
