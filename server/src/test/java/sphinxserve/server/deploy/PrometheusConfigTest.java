package sphinxserve.server.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * deploy/prometheus read strictly into records of Prometheus' configuration and rule-file formats (the fields these
 * files use, named as Prometheus names them); the alerts use DESIGN.md's metric names.
 */
final class PrometheusConfigTest {

  private static final Path DIR = DeployFiles.root().resolve("prometheus");

  record Config(Map<String, String> global, List<String> rule_files, List<ScrapeConfig> scrape_configs) {}

  record ScrapeConfig(String job_name, List<SdConfig> kubernetes_sd_configs, List<Relabel> relabel_configs) {}

  record SdConfig(String role) {}

  record Relabel(List<String> source_labels, String action, String regex, String replacement, String target_label) {}

  record Rules(List<Group> groups) {}

  record Group(String name, List<Rule> rules) {}

  /** {@code for} is a Java keyword, hence the rename. */
  record Rule(String alert, String expr, @JsonProperty("for") String forDuration, Map<String, String> labels,
      Map<String, String> annotations) {}

  @Test
  void scrapeConfig_keepsTheNodesAndUsesTheirMetricsPort() {
    Config config = DeployFiles.read(DIR.resolve("prometheus.yaml"), Config.class);
    ScrapeConfig job = config.scrape_configs().getFirst();
    assertEquals("sphinx-node", job.job_name());
    assertEquals("pod", job.kubernetes_sd_configs().getFirst().role());
    assertTrue(job.relabel_configs().stream().anyMatch(r -> "keep".equals(r.action()) && "sphinx-node".equals(r.regex())));
    for (String file : config.rule_files()) {
      DeployFiles.read(DIR.resolve(file), Rules.class);
    }
  }

  @Test
  void alerts_useTheDesignsMetricNames() {
    Rules rules = DeployFiles.read(DIR.resolve("sphinx-alerts.yaml"), Rules.class);
    String exprs = String.join("\n", rules.groups().stream().flatMap(g -> g.rules().stream()).map(Rule::expr).toList());
    for (String metric : List.of("sphinx_scheduler_waiting", "sphinx_kv_cache_usage", "sphinx_image_cache_lookups_total",
        "sphinx_request_time_to_first_token_seconds_bucket", "sphinx_scheduler_preemptions_total")) {
      assertTrue(exprs.contains(metric), metric);
    }
    assertTrue(rules.groups().stream().flatMap(g -> g.rules().stream()).allMatch(r -> r.forDuration() != null && r.alert() != null));
  }
}
