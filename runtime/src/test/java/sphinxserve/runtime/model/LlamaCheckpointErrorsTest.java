package sphinxserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.bundle.BundleFiles;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.testing.checkpoints.CheckpointCorruptions;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;

/**
 * Bad checkpoint folders are refused at open, before anything is built, with a message naming the file and the
 * tensor or field; nothing is guessed.
 */
class LlamaCheckpointErrorsTest {

  @TempDir Path tmp;

  private Path model() throws IOException {
    return RandomCheckpoints.builder().chatTemplate(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE).shards(2).seed(5).build()
        .writeHf(tmp.resolve("model"));
  }

  @Test
  void missingShardIsNamed() throws IOException {
    Path model = model();
    Path shard = CheckpointCorruptions.delete(CheckpointCorruptions.fileOf(model, "model.norm.weight"));
    refused(model, shard.getFileName().toString(), "missing");
  }

  @Test
  void truncatedShardIsNamed() throws IOException {
    Path model = model();
    Path shard = CheckpointCorruptions.truncate(CheckpointCorruptions.fileOf(model, "model.norm.weight"), 64);
    refused(model, shard.getFileName().toString(), "truncated");
  }

  @Test
  void shapeDisagreeingWithConfigIsNamed() throws IOException {
    Path model = model();
    // Same element count, other shape: the file is consistent, the config is not.
    CheckpointCorruptions.setShape(model, "model.layers.1.mlp.up_proj.weight", 64, 160);
    refused(model, "model.layers.1.mlp.up_proj.weight", "config.json implies [160, 64]");
  }

  @Test
  void unknownDtypeIsNamed() throws IOException {
    Path model = model();
    CheckpointCorruptions.setDtype(model, "model.norm.weight", "F8_E9M0");
    refused(model, "model.norm.weight", "F8_E9M0");
  }

  @Test
  void missingTensorIsNamed() throws IOException {
    Path model = model();
    CheckpointCorruptions.removeTensor(model, "model.layers.0.self_attn.k_proj.weight");
    refused(model, "model.layers.0.self_attn.k_proj.weight", "");
  }

  @Test
  void unsupportedRopeScalingIsRefusedNamingTheField() throws IOException {
    Path model = model();
    edit(model.resolve("config.json"), "\"rope_scaling\" : null", "\"rope_scaling\" : {\"rope_type\": \"yarn\", \"factor\": 4.0}");
    refused(model, "config.json", "rope_scaling.rope_type");
  }

  @Test
  void otherArchitectureIsRefused() throws IOException {
    Path model = model();
    edit(model.resolve("config.json"), "\"LlamaForCausalLM\"", "\"MistralForCausalLM\"");
    refused(model, "config.json", "architectures");
  }

  @Test
  void configDisagreeingWithWeightsIsRefused() throws IOException {
    Path model = model();
    edit(model.resolve("config.json"), "\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 1");
    refused(model, "model", "tensors the model does not use");
  }

  @Test
  void baseModelWithoutTemplateIsRefusedAtBuildLeavingNoBundle() throws IOException {
    Path model = RandomCheckpoints.builder().seed(6).build().writeHf(tmp.resolve("base"));
    Path out = tmp.resolve("out");
    var e = assertThrows(BundleException.class, () -> BundleBuilder.build(LlamaCheckpoint.open(model, 0), WeightQuantization.NONE, "t", out));
    assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains("chat_template"), e.getMessage());
    assertFalse(Files.exists(out.resolve(BundleFiles.MANIFEST)));
  }

  private static void refused(Path model, String names, String says) {
    var e = assertThrows(BundleException.class, () -> LlamaCheckpoint.open(model, 0));
    assertTrue(e.getMessage().contains(names) && e.getMessage().contains(says), e.getMessage());
  }

  private static void edit(Path file, String from, String to) throws IOException {
    String text = Files.readString(file);
    assertTrue(text.contains(from), file + " lacks " + from + ":\n" + text);
    Files.writeString(file, text.replace(from, to));
  }
}
