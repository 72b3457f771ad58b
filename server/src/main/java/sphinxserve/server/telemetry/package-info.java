/**
 * OpenTelemetry metrics and traces ({@code Telemetry}) and each call's span, metrics and request log line ({@code
 * RequestTelemetry}, with the protocol as an attribute).
 */
package sphinxserve.server.telemetry;
