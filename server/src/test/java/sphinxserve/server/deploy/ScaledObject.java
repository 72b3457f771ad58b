package sphinxserve.server.deploy;

import java.util.List;
import java.util.Map;

/** The fields of KEDA's {@code ScaledObject} (keda.sh/v1alpha1) that deploy/k8s/keda uses, as KEDA's CRD names them. */
record ScaledObject(String apiVersion, String kind, Metadata metadata, Spec spec) {

  record Metadata(String name, String namespace, Map<String, String> labels) {}

  record Spec(Target scaleTargetRef, Integer minReplicaCount, Integer maxReplicaCount, Integer pollingInterval,
      Integer cooldownPeriod, Advanced advanced, List<Trigger> triggers) {}

  record Target(String apiVersion, String kind, String name) {}

  record Advanced(HpaConfig horizontalPodAutoscalerConfig) {}

  /** KEDA passes {@code behavior} through to the HPA it creates; checked there as autoscaling/v2's shape. */
  record HpaConfig(Behavior behavior) {}

  record Behavior(Rules scaleUp, Rules scaleDown) {}

  record Rules(Integer stabilizationWindowSeconds, List<Policy> policies, String selectPolicy) {}

  record Policy(String type, Integer value, Integer periodSeconds) {}

  /** A trigger; {@code metadata} is free-form per scaler type (all strings). */
  record Trigger(String type, Map<String, String> metadata) {}
}
