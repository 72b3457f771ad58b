package sphinxserve.server.deploy;

import java.util.List;
import java.util.Map;

/** The fields of kustomize's {@code Kustomization} (kustomize.config.k8s.io/v1beta1) that deploy/k8s uses. */
record Kustomization(String apiVersion, String kind, List<String> resources, List<Label> labels, List<ImageTag> images,
    List<Patch> patches) {

  /** {@code labels[]}: labels added to every resource. */
  record Label(Map<String, String> pairs, Boolean includeSelectors, Boolean includeTemplates) {}

  /** {@code images[]}: an image name rewritten. */
  record ImageTag(String name, String newName, String newTag, String digest) {}

  /** {@code patches[]}: a strategic-merge patch file. */
  record Patch(String path) {}
}
