/**
 * The gRPC face: {@code SphinxService} (sphinx.v1.Sphinx over {@code generate.GenerateCalls}), its stream sink
 * with flow control ({@code StreamSink}) and the interceptors (authentication, tenant limits, tracing, parse
 * errors as INVALID_ARGUMENT). A thin adapter: no request logic of its own.
 */
package sphinxserve.server.grpc;
