package sphinxserve.server;

import sphinxserve.api.ModelRuntime;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.GenerationBackend;

/** Creates the node's {@link GenerationBackend} over the opened model and its KV storage. */
@FunctionalInterface
public interface BackendFactory {

  /** The backend that drives {@code runtime}, whose decoder writes {@code kvStorage}, within {@code config}'s limits. */
  GenerationBackend create(ModelRuntime runtime, KvCacheStorage kvStorage, NodeConfig config);
}
