/**
 * The node's configuration: {@code NodeConfig} (flags parsed by picocli over {@code SPHINX_*} environment
 * variables over a properties file over defaults, each value checked with its source named) and the sizing derived
 * from it ({@code KvPoolSizing}, {@code KvCacheMemory}, {@code HostMemory}). Imports nothing else of the server.
 */
package sphinxserve.server.config;
