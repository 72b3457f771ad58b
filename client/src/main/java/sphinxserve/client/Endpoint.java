package sphinxserve.client;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.grpc.Channel;

/**
 * One node the client talks to: its name, its channel and its circuit breaker.
 *
 * @param target  the target as given ({@code host:port}) or a name for a caller's channel
 * @param channel the channel to it
 * @param breaker its circuit breaker
 */
record Endpoint(String target, Channel channel, CircuitBreaker breaker) {}
