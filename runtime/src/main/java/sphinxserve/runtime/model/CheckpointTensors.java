package sphinxserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.bundle.SafeTensors;

/**
 * The tensors of a checkpoint folder: one safetensors file, or shards listed by a {@code *.safetensors.index.json}
 * ({@code weight_map}: tensor → file). Files are memory-mapped, so a model of any size is read a tensor at a
 * time. Opening checks every shard exists, parses, and holds the tensors the index assigns to it.
 */
final class CheckpointTensors {

  /** Single-file names, in the order looked for. */
  private static final List<String> SINGLE_FILES = List.of("model.safetensors", "consolidated.safetensors");

  private final Map<String, SafeTensors.Tensor> tensors;
  private final List<Path> files;

  private CheckpointTensors(Map<String, SafeTensors.Tensor> tensors, List<Path> files) {
    this.tensors = tensors;
    this.files = files;
  }

  static CheckpointTensors open(Path dir) {
    Path index = findIndex(dir);
    if (index != null) return fromIndex(dir, index);
    for (String name : SINGLE_FILES) {
      Path file = dir.resolve(name);
      if (Files.isRegularFile(file)) return fromFiles(List.of(file));
    }
    if (Files.isRegularFile(dir.resolve("pytorch_model.bin")) || Files.isRegularFile(dir.resolve("pytorch_model.bin.index.json"))) {
      throw new BundleException(dir + ": holds pytorch_model.bin (pickle) weights; this node reads safetensors only "
          + "(convert with transformers: model.save_pretrained(dir, safe_serialization=True))");
    }
    throw new BundleException(dir + ": no weights: expected " + String.join(" or ", SINGLE_FILES) + ", or shards with a *.safetensors.index.json");
  }

  private static Path findIndex(Path dir) {
    for (String name : List.of("model.safetensors.index.json", "consolidated.safetensors.index.json")) {
      Path file = dir.resolve(name);
      if (Files.isRegularFile(file)) return file;
    }
    return null;
  }

  private static CheckpointTensors fromIndex(Path dir, Path index) {
    JsonNode weightMap = JsonFiles.read(index).path("weight_map");
    if (!weightMap.isObject() || weightMap.isEmpty()) throw new BundleException(index + ": weight_map is missing or empty");
    Map<String, String> fileOf = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String file = e.getValue().asText("");
      if (file.isEmpty() || file.contains("/") || file.contains("\\")) {
        throw new BundleException(index + ": weight_map." + e.getKey() + " must name a file in the folder, got " + e.getValue());
      }
      fileOf.put(e.getKey(), file);
    }
    Map<String, SafeTensors> shards = new TreeMap<>();
    for (String file : new TreeSet<>(fileOf.values())) {
      Path path = dir.resolve(file);
      if (!Files.isRegularFile(path)) throw new BundleException(path + ": missing (listed in " + index.getFileName() + ")");
      shards.put(file, SafeTensors.map(path));
    }
    Map<String, SafeTensors.Tensor> tensors = new LinkedHashMap<>();
    for (Map.Entry<String, String> e : fileOf.entrySet()) {
      SafeTensors shard = shards.get(e.getValue());
      if (!shard.contains(e.getKey())) {
        throw new BundleException(dir.resolve(e.getValue()) + ": has no tensor " + e.getKey() + " (" + index.getFileName() + " puts it there)");
      }
      tensors.put(e.getKey(), shard.get(e.getKey()));
    }
    for (Map.Entry<String, SafeTensors> shard : shards.entrySet()) {
      for (String name : shard.getValue().names()) {
        if (!fileOf.containsKey(name)) {
          throw new BundleException(dir.resolve(shard.getKey()) + ": holds tensor " + name + " that " + index.getFileName() + " does not list");
        }
      }
    }
    return new CheckpointTensors(tensors, shards.keySet().stream().map(dir::resolve).toList());
  }

  private static CheckpointTensors fromFiles(List<Path> files) {
    Map<String, SafeTensors.Tensor> tensors = new LinkedHashMap<>();
    for (Path file : files) {
      SafeTensors st = SafeTensors.map(file);
      for (String name : st.names()) tensors.put(name, st.get(name));
    }
    return new CheckpointTensors(tensors, files);
  }

  /** The weight files, for hashing and progress. */
  List<Path> files() {
    return files;
  }

  boolean contains(String name) {
    return tensors.containsKey(name);
  }

  /** The tensor {@code name}; an error naming it when the checkpoint lacks it. */
  SafeTensors.Tensor get(String name) {
    SafeTensors.Tensor t = tensors.get(name);
    if (t == null) throw new BundleException("the checkpoint has no tensor " + name);
    return t;
  }

  /** Every tensor name. */
  java.util.Set<String> names() {
    return tensors.keySet();
  }
}
