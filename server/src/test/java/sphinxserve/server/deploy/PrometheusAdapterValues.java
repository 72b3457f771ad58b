package sphinxserve.server.deploy;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;
import java.util.Map;

/** The Helm values of prometheus-adapter that deploy/k8s/monitoring uses (its chart's values.yaml names). */
record PrometheusAdapterValues(Prometheus prometheus, Rules rules) {

  record Prometheus(String url, Integer port, String path) {}

  /** {@code rules.default} is a Java keyword, hence the rename. */
  record Rules(@JsonProperty("default") Boolean useDefaultRules, List<Rule> custom) {}

  /** One discovery rule (prometheus-adapter's config format). */
  record Rule(String seriesQuery, Resources resources, Name name, String metricsQuery) {}

  record Resources(Map<String, Map<String, String>> overrides, String template) {}

  record Name(String matches, String as) {}
}
