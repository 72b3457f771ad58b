package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.ModelInfo;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sphinxserve.runtime.testing.checkpoints.RandomCheckpoints;
import sphinxserve.runtime.testing.checkpoints.ReferenceLlama;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;

/**
 * {@code --model DIR}: a Hugging Face checkpoint folder served by a real node over gRPC. The answer's tokens and
 * log-probabilities equal the independent reference's for the prompt the model's chat template makes; the bundle
 * is built once into the cache and reused; a text-only model refuses images naming the field.
 */
class ModelFolderNodeTest {

  private static final String SYSTEM = "You are terse.";
  private static final String QUESTION = "Hello there";
  private static final int NEW_TOKENS = 12;

  @Test
  void servesACheckpointFolderAsItsReferenceComputesIt(@TempDir Path tmp) throws Exception {
    Path model = RandomCheckpoints.builder().llama3Chat().dtype(sphinxserve.runtime.testing.checkpoints.RawSafetensors.Dtype.BF16)
        .shards(2).seed(7).build().writeHf(tmp.resolve("Tiny-Chat"));
    Path cache = tmp.resolve("cache");
    ReferenceLlama reference = ReferenceLlama.load(model);
    int[] prompt = expectedPrompt(model);

    try (SphinxNode node = open(model, cache)) {
      ManagedChannel channel = channel(node);
      try {
        exercise(channel, reference, prompt);
      } finally {
        channel.shutdownNow();
      }
    }

    // The second start finds the bundle; a changed input file gets a new one.
    List<Path> built = bundles(cache);
    assertEquals(1, built.size(), "one bundle built: " + built);
    long modified = Files.getLastModifiedTime(built.getFirst().resolve("decoder.onnx.data")).toMillis();
    try (SphinxNode node = open(model, cache)) {
      assertEquals(built, bundles(cache));
      assertEquals(modified, Files.getLastModifiedTime(built.getFirst().resolve("decoder.onnx.data")).toMillis());
    }
    Path config = model.resolve("generation_config.json");
    Files.writeString(config, Files.readString(config).replace("\"bos_token_id\"", "\"do_sample\" : false,\n  \"bos_token_id\""));
    try (SphinxNode node = open(model, cache)) {
      List<Path> now = bundles(cache);
      assertEquals(2, now.size(), "a changed generation_config.json is another bundle: " + now);
      assertNotEquals(built, now);
    }
  }

  /** Model info, one answer against the reference, and the image refusals. */
  private static void exercise(ManagedChannel channel, ReferenceLlama reference, int[] prompt) {
    {
      ModelInfo info = SphinxGrpc.newBlockingStub(channel).getModelInfo(GetModelInfoRequest.getDefaultInstance());
      assertEquals("Tiny-Chat", info.getModelName());
      assertFalse(info.getAcceptsImages());
      assertEquals(RandomCheckpoints.LLAMA3_CHAT_TEMPLATE, info.getChatTemplate());
      assertEquals("llama", info.getArchitecture());

      List<GenerateResponse> out = generate(channel, request(Content.newBuilder().setText(QUESTION).build()));
      int[] tokens = out.stream().flatMap(r -> r.getTokenIdsList().stream()).mapToInt(Integer::intValue).toArray();
      assertEquals(prompt.length, out.getLast().getUsage().getPromptTokens(), "the chat template's prompt");
      assertArrayEquals(reference.greedy(prompt, NEW_TOKENS), tokens, "greedy tokens against the reference");
      List<Float> logprobs = out.stream().flatMap(r -> r.getLogprobsList().stream()).map(l -> l.getLogprob()).toList();
      int[] sequence = IntStream.concat(IntStream.of(prompt), IntStream.of(tokens)).toArray();
      for (int i = 0; i < NEW_TOKENS; i++) {
        double[] logits = reference.lastLogits(java.util.Arrays.copyOf(sequence, prompt.length + i));
        double expected = logits[tokens[i]] - logSumExp(logits);
        assertEquals(expected, logprobs.get(i), 1e-4, "log-probability of token " + i);
      }

      // A text-only model refuses an image, naming where it is.
      var image = Content.newBuilder().setImage(ByteString.copyFrom(new byte[] {1, 2, 3})).build();
      var e = assertThrows(StatusRuntimeException.class, () -> generate(channel, request(image)));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("messages[1].content[0]"), e.getStatus().getDescription());
      var put = assertThrows(StatusRuntimeException.class, () -> SphinxGrpc.newBlockingStub(channel)
          .putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(new byte[] {1})).build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, put.getStatus().getCode());
    }
  }

  /**
   * The exporter's path (tools/sphinx_export run on SPHINX-tiny: Meta-layout decoder, torch.onnx vision graph) and the
   * Java builder's own (the embedded bundle) are two builds of one model: real nodes give the same greedy answer
   * about a real image.
   */
  @Test
  void sphinxTinyExportAnswersAsTheEmbeddedModel(@TempDir Path tmp) throws Exception {
    Path export = tmp.resolve("sphinx-tiny-export");
    Files.createDirectories(export);
    for (String file : List.of("params.json", "consolidated.safetensors", "tokenizer.json", "tokenizer_config.json", "vision.onnx", "sphinx.json")) {
      try (var in = ModelFolderNodeTest.class.getResourceAsStream("/sphinx-tiny-export/" + file)) {
        Files.copy(java.util.Objects.requireNonNull(in, file), export.resolve(file));
      }
    }
    byte[] png = Files.readAllBytes(Path.of("../docs/examples/scene.png"));
    GenerateRequest ask = GenerateRequest.newBuilder()
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setImage(ByteString.copyFrom(png)))
            .addContent(Content.newBuilder().setText("What is in the image?")))
        .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(24)).build();
    List<Integer> answers = new ArrayList<>();
    List<String> texts = new ArrayList<>();
    for (String[] source : new String[][] {{"--model", export.toString()}, {"--bundle", "embedded:sphinx-tiny"}}) {
      NodeConfig config = NodeConfig.parse(new String[] {source[0], source[1], "--bundle-cache", tmp.resolve("cache").toString(),
          "--port=0", "--metrics-port=0", "--http-port=0", "--kv-blocks=128", "--ort-threads=1", "--drain-seconds=1"}, Map.of());
      try (SphinxNode node = SphinxNode.open(config, EngineBackend::new)) {
        ManagedChannel channel = channel(node);
        try {
          List<GenerateResponse> out = generate(channel, ask);
          texts.add(out.stream().map(GenerateResponse::getText).reduce("", String::concat));
          answers.add(out.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum());
          answers.add(out.stream().flatMap(r -> r.getTokenIdsList().stream()).toList().hashCode());
        } finally {
          channel.shutdownNow();
        }
      }
    }
    assertEquals(texts.get(1), texts.get(0), "the export's answer against the embedded model's");
    assertEquals(answers.subList(2, 4), answers.subList(0, 2), "token ids");
    assertFalse(texts.get(0).isBlank());
  }

  // ---- helpers ---------------------------------------------------------------------------------------

  private static SphinxNode open(Path model, Path cache) {
    NodeConfig config = NodeConfig.parse(new String[] {"--model", model.toString(), "--bundle-cache", cache.toString(),
        "--port=0", "--metrics-port=0", "--http-port=0", "--kv-blocks=64", "--ort-threads=1", "--drain-seconds=1"}, Map.of());
    return SphinxNode.open(config, EngineBackend::new);
  }

  private static ManagedChannel channel(SphinxNode node) {
    return NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
  }

  private static GenerateRequest request(Content user) {
    return GenerateRequest.newBuilder()
        .addMessages(Message.newBuilder().setRole(Role.SYSTEM).addContent(Content.newBuilder().setText(SYSTEM)))
        .addMessages(Message.newBuilder().setRole(Role.USER).addContent(user))
        .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(NEW_TOKENS).setIgnoreEos(true).setLogprobs(1))
        .build();
  }

  private static List<GenerateResponse> generate(ManagedChannel channel, GenerateRequest request) {
    List<GenerateResponse> out = new ArrayList<>();
    SphinxGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(request).forEachRemaining(out::add);
    return out;
  }

  /**
   * The prompt {@link RandomCheckpoints#LLAMA3_CHAT_TEMPLATE} makes, written out by hand: special tokens by id,
   * the text between them through the folder's tokenizer.
   */
  private static int[] expectedPrompt(Path model) throws IOException {
    try (HfTextTokenizer tokenizer = HfTextTokenizer.load(model)) {
      Map<String, Integer> special = tokenizer.specialTokenIds();
      int start = special.get("<|start_header_id|>");
      int end = special.get("<|end_header_id|>");
      int eot = special.get("<|eot_id|>");
      List<Integer> ids = new ArrayList<>(List.of(special.get("<s>")));
      for (String[] turn : new String[][] {{"system", SYSTEM}, {"user", QUESTION}}) {
        ids.add(start);
        ids.addAll(box(tokenizer.encode(turn[0])));
        ids.add(end);
        ids.addAll(box(tokenizer.encode("\n\n" + turn[1])));
        ids.add(eot);
      }
      ids.add(start);
      ids.addAll(box(tokenizer.encode("assistant")));
      ids.add(end);
      ids.addAll(box(tokenizer.encode("\n\n")));
      return ids.stream().mapToInt(Integer::intValue).toArray();
    }
  }

  private static List<Integer> box(int[] ids) {
    return IntStream.of(ids).boxed().toList();
  }

  private static double logSumExp(double[] x) {
    double max = Double.NEGATIVE_INFINITY;
    for (double v : x) max = Math.max(max, v);
    double sum = 0;
    for (double v : x) sum += Math.exp(v - max);
    return max + Math.log(sum);
  }

  private static List<Path> bundles(Path cache) throws IOException {
    try (Stream<Path> files = Files.list(cache)) {
      return files.filter(p -> Files.isRegularFile(p.resolve("bundle.json"))).sorted().toList();
    }
  }
}
