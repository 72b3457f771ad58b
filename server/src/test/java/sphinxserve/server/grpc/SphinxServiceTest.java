package sphinxserve.server.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Choices;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.ModelInfo;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.PutImageResponse;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import dev.sphinxserve.proto.v1.Tool;
import dev.sphinxserve.proto.v1.ToolCall;
import dev.sphinxserve.proto.v1.ToolChoice;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import sphinxserve.api.ModelSpec;
import sphinxserve.server.image.ImageDigest;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/** The node end to end: a real Netty server on loopback, the real ONNX Runtime over the TEST bundle. */
final class SphinxServiceTest {

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension("--max-image-jobs=64", "--max-vision-batch=8",
      "--image-threads=2", "--max-image-bytes=1m", "--max-image-pixels=4000000",
      "--max-prompt-chars=1000000"); // past the context, so the context check is what refuses a long prompt

  private static SphinxGrpc.SphinxBlockingStub stub() {
    return SphinxGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(30, TimeUnit.SECONDS);
  }

  private static byte[] image(long seed) {
    return TestImages.png(TestImages.noise(40, 30, seed));
  }

  private static PutImageResponse put(byte[] bytes) {
    return stub().putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(bytes)).build());
  }

  @Test
  void putImage_returnsDigestAndSize_thenCached() {
    byte[] bytes = image(1);
    PutImageResponse first = put(bytes);
    assertEquals(ImageDigest.of(bytes), first.getDigest());
    assertEquals(40, first.getWidth());
    assertEquals(30, first.getHeight());
    assertFalse(first.getCached());
    PutImageResponse second = put(bytes);
    assertTrue(second.getCached());
    assertEquals(first.getDigest(), second.getDigest());
  }

  @Test
  void putImage_afterInvalidate_digestNotFoundUntilTheBytesComeAgain() {
    byte[] bytes = image(3);
    String digest = put(bytes).getDigest();
    NODE.node().images().invalidate(digest);
    StatusRuntimeException e = generateFails(GenerateRequest.newBuilder().addMessages(user(digest(digest), text("x"))).build());
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    assertFalse(put(bytes).getCached(), "encoded again");
    assertTrue(put(bytes).getCached());
  }

  @Test
  void putImage_sameImageConcurrently_encodesOnce() {
    byte[] bytes = image(2);
    int before = NODE.runtime().encodeCalls().size();
    var async = SphinxGrpc.newFutureStub(NODE.channel()).withDeadlineAfter(30, TimeUnit.SECONDS);
    List<com.google.common.util.concurrent.ListenableFuture<PutImageResponse>> calls = new ArrayList<>();
    for (int i = 0; i < 8; i++) calls.add(async.putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(bytes)).build()));
    List<PutImageResponse> responses = calls.stream().map(f -> {
      try {
        return f.get(30, TimeUnit.SECONDS);
      } catch (Exception e) {
        throw new AssertionError(e);
      }
    }).toList();
    assertEquals(1, NODE.runtime().encodeCalls().size() - before, "vision encoder calls");
    assertEquals(1, responses.stream().filter(r -> !r.getCached()).count(), "exactly one call encoded");
    assertTrue(responses.stream().allMatch(r -> r.getDigest().equals(ImageDigest.of(bytes))));
  }

  @Test
  void putImage_differentImagesConcurrently_encodedAsOneBatch() throws Exception {
    int numViews = NODE.bundle().spec().vision().numViews();
    int numImages = 5;
    // Hold the first encoder call until every other image is preprocessed and queued, so they form one batch.
    NODE.runtime().beforeEncode(views -> {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (NODE.node().images().numQueuedForEncoder() < numImages - views / numViews && System.nanoTime() < until) {
        Thread.onSpinWait();
      }
      NODE.runtime().beforeEncode(v -> {});
    });
    int before = NODE.runtime().encodeCalls().size();
    var async = SphinxGrpc.newFutureStub(NODE.channel()).withDeadlineAfter(30, TimeUnit.SECONDS);
    List<com.google.common.util.concurrent.ListenableFuture<PutImageResponse>> calls = new ArrayList<>();
    for (int i = 0; i < numImages; i++) calls.add(async.putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(image(100 + i))).build()));
    for (var c : calls) assertFalse(c.get(30, TimeUnit.SECONDS).getCached());
    List<Integer> batches = NODE.runtime().encodeCalls().subList(before, NODE.runtime().encodeCalls().size());
    assertEquals(numImages * numViews, batches.stream().mapToInt(Integer::intValue).sum(), "views encoded: " + batches);
    // The first call took what was queued when it started; every image that queued meanwhile went in at most
    // one more call, so 5 images took at most 2 calls and one of them carried at least 3 images.
    assertTrue(batches.size() <= 2, "at most two encoder calls: " + batches);
    assertTrue(batches.stream().mapToInt(Integer::intValue).max().orElseThrow() >= 3 * numViews, "batched: " + batches);
  }

  @Test
  void putImage_notAnImage_invalidArgumentNamingImage() {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> put("hello, not an image".getBytes()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().startsWith("image: not an image"), e.getStatus().getDescription());
  }

  @Test
  void putImage_decompressionBomb_refusedBeforeDecoding() {
    int before = NODE.runtime().encodeCalls().size();
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> put(TestImages.pngDeclaring(100_000, 100_000)));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), "a size limit: retrying cannot pass");
    assertTrue(e.getStatus().getDescription().startsWith("image: declares 100000 × 100000"), e.getStatus().getDescription());
    assertTrue(e.getStatus().getDescription().contains("max_image_pixels"), e.getStatus().getDescription());
    assertEquals(before, NODE.runtime().encodeCalls().size());
  }

  @Test
  void putImage_overByteLimit_invalidArgumentNamingLimit() {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> put(new byte[(1 << 20) + 1]));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().startsWith("image: 1048577 bytes exceed the limit of 1048576"), e.getStatus().getDescription());
  }

  @Test
  void getModelInfo_matchesBundle() {
    ModelSpec spec = NODE.bundle().spec();
    ModelInfo info = stub().getModelInfo(GetModelInfoRequest.getDefaultInstance());
    assertEquals(spec.bundleId(), info.getBundleId());
    assertEquals(spec.architecture(), info.getArchitecture());
    assertEquals(spec.vocabSize(), info.getVocabSize());
    assertEquals(spec.maxContextTokens(), info.getMaxContextTokens());
    assertEquals(spec.vision().imageSize(), info.getImageSize());
    assertEquals(spec.vision().grid(), info.getGrid());
    assertEquals(5, info.getNumViews());
    assertEquals(spec.vision().tokensPerView(), info.getTokensPerView());
    assertEquals(spec.vision().tokensPerImage(), info.getImageTokens());
    assertEquals("conv_v1_2", info.getTemplate());
    assertEquals(spec.stopStrings(), info.getStopStringsList());
    assertEquals(1 << 20, info.getLimits().getMaxImageBytes());
    assertEquals(4_000_000, info.getLimits().getMaxImagePixels());
    assertEquals(16 << 20, info.getLimits().getMaxMessageBytes());
  }

  @Test
  void health_reportsServing() {
    var health = HealthGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(10, TimeUnit.SECONDS);
    assertEquals(ServingStatus.SERVING, health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
    assertEquals(ServingStatus.SERVING, health.check(HealthCheckRequest.newBuilder().setService("sphinx.v1.Sphinx").build()).getStatus());
  }

  @Test
  void reflection_listsSphinxService() throws Exception {
    CompletableFuture<List<String>> names = new CompletableFuture<>();
    StreamObserver<ServerReflectionRequest> requests = ServerReflectionGrpc.newStub(NODE.channel())
        .serverReflectionInfo(new StreamObserver<>() {
          @Override
          public void onNext(ServerReflectionResponse r) {
            names.complete(r.getListServicesResponse().getServiceList().stream().map(ServiceResponse::getName).toList());
          }

          @Override
          public void onError(Throwable t) {
            names.completeExceptionally(t);
          }

          @Override
          public void onCompleted() {}
        });
    requests.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
    List<String> services = names.get(10, TimeUnit.SECONDS);
    requests.onCompleted();
    assertTrue(services.contains("sphinx.v1.Sphinx"), services.toString());
    assertTrue(services.contains("grpc.health.v1.Health"), services.toString());
  }

  // ---- Generate ----

  private static Message user(Content... content) {
    return Message.newBuilder().setRole(Role.USER).addAllContent(List.of(content)).build();
  }

  private static Message assistant(String text) {
    return Message.newBuilder().setRole(Role.ASSISTANT).addContent(text(text)).build();
  }

  private static Content text(String text) {
    return Content.newBuilder().setText(text).build();
  }

  private static Content imageContent(byte[] bytes) {
    return Content.newBuilder().setImage(ByteString.copyFrom(bytes)).build();
  }

  private static Content digest(String digest) {
    return Content.newBuilder().setImageDigest(digest).build();
  }

  private static GenerateRequest ask(SamplingParams sampling) {
    return GenerateRequest.newBuilder().addMessages(user(text("Hi"))).setSampling(sampling).build();
  }

  private static StatusRuntimeException generateFails(GenerateRequest request) {
    return assertThrows(StatusRuntimeException.class, () -> stub().generate(request).hasNext());
  }

  private static Message system(String text) {
    return Message.newBuilder().setRole(Role.SYSTEM).addContent(text(text)).build();
  }

  static Stream<Arguments> invalidRequests() {
    return Stream.of(
        Arguments.of(GenerateRequest.getDefaultInstance(), "messages: at least one message"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("x"))).addPromptTokenIds(1).build(), "prompt_token_ids: set either messages or prompt_token_ids"),
        Arguments.of(GenerateRequest.newBuilder().addPromptTokenIds(1).addPromptTokenIds(1 << 30).build(), "prompt_token_ids[1]: 1073741824 is outside the vocabulary"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(assistant("x")).build(), "messages[0].role: must be USER"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(Message.newBuilder().addContent(text("x"))).build(), "messages[0].role: must be SYSTEM, USER, ASSISTANT or TOOL"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(system("b")).build(), "messages[1].role: SYSTEM is allowed only as the first message"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(system("a")).addMessages(assistant("b")).build(), "messages[1].role: must be USER: a conversation starts with the user"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.SYSTEM).addContent(imageContent(new byte[] {1})))
            .addMessages(user(text("x"))).build(), "messages[0].content[0]: a SYSTEM message holds text only"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(user(text("b"))).build(), "messages[1].role: must be ASSISTANT after USER"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(assistant("b")).build(), "messages[1].role: must be USER (or TOOL): the conversation ends"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(Message.newBuilder().setRole(Role.USER)).build(), "messages[0].content: must not be empty"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(Content.getDefaultInstance())).build(), "messages[0].content[0]: empty"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(imageContent(new byte[] {1}), text("x"), digest("a".repeat(64)))).build(),
            "messages[0].content[2]: at most one image per conversation (the image is messages[0].content[0])"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(digest("ABC"))).build(), "messages[0].content[0].image_digest: must be a SHA-256"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("x"), Content.newBuilder().setImage(ByteString.EMPTY).build())).build(), "messages[0].content[1].image: empty"),
        Arguments.of(GenerateRequest.newBuilder().setRequestId("r".repeat(129)).addMessages(user(text("x"))).build(), "request_id: at most 128"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("x"))).setPriority(101).build(), "priority: must be in -100..100"),
        Arguments.of(ask(SamplingParams.newBuilder().setTemperature(2.5f).build()), "sampling.temperature: must be in 0..2"),
        Arguments.of(ask(SamplingParams.newBuilder().setTemperature(Float.NaN).build()), "sampling.temperature: must be in 0..2"),
        Arguments.of(ask(SamplingParams.newBuilder().setTopP(1.5f).build()), "sampling.top_p: must be in 0..1"),
        Arguments.of(ask(SamplingParams.newBuilder().setTopK(-1).build()), "sampling.top_k: must be >= 0"),
        Arguments.of(ask(SamplingParams.newBuilder().setMinP(-0.1f).build()), "sampling.min_p: must be in 0..1"),
        Arguments.of(ask(SamplingParams.newBuilder().setRepetitionPenalty(-1).build()), "sampling.repetition_penalty: must be"),
        Arguments.of(ask(SamplingParams.newBuilder().setPresencePenalty(3).build()), "sampling.presence_penalty: must be in -2..2"),
        Arguments.of(ask(SamplingParams.newBuilder().setFrequencyPenalty(-2.5f).build()), "sampling.frequency_penalty: must be in -2..2"),
        Arguments.of(ask(SamplingParams.newBuilder().addAllStop(List.of("1", "2", "3", "4", "5", "6", "7", "8", "9")).build()), "sampling.stop: at most 8"),
        Arguments.of(ask(SamplingParams.newBuilder().addStop("x".repeat(65)).build()), "sampling.stop[0]: at most 64 UTF-8 bytes"),
        Arguments.of(ask(SamplingParams.newBuilder().addStop("").build()), "sampling.stop[0]: must not be empty"),
        Arguments.of(ask(SamplingParams.newBuilder().setLogprobs(21).build()), "sampling.logprobs: must be in 0..20"),
        Arguments.of(ask(SamplingParams.newBuilder().setMaxTokens(5).setMinTokens(6).build()), "sampling.min_tokens: 6 exceeds sampling.max_tokens 5"),
        Arguments.of(ask(SamplingParams.newBuilder().setMaxTokens(1_000_000).build()), "sampling.max_tokens: 1000000 tokens after a prompt of"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("word ".repeat(20_000)))).build(), "messages: the prompt takes"),
        // tools, tool turns and constraints
        Arguments.of(withTools(Tool.newBuilder().setName("bad name").build()), "tools[0].name: must be 1 to 64"),
        Arguments.of(withTools(Tool.newBuilder().setName("f").build(), Tool.newBuilder().setName("f").build()), "tools[1].name: 'f' is defined twice"),
        Arguments.of(withTools(Tool.newBuilder().setName("f").setParameters("{nope").build()), "tools[0].parameters: is not valid JSON"),
        Arguments.of(withTools(Tool.newBuilder().setName("f").setParameters("[1]").build()), "tools[0].parameters: must be a JSON Schema object"),
        Arguments.of(withTools(Tool.newBuilder().setName("f").build()).toBuilder().setToolChoice(ToolChoice.newBuilder()
            .setMode(ToolChoice.Mode.FUNCTION).setFunctionName("g")).build(), "tool_choice.function_name: 'g' is not one of the request's tools"),
        Arguments.of(ask(SamplingParams.getDefaultInstance()).toBuilder().setToolChoice(ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED)).build(),
            "tool_choice: REQUIRED needs tools"),
        Arguments.of(withTools(Tool.newBuilder().setName("f").build()).toBuilder().setToolChoice(ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED))
            .setSampling(SamplingParams.newBuilder().setConstraint(Constraint.newBuilder().setJsonObject(true))).build(), "sampling.constraint: cannot be combined with tool_choice"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(Message.newBuilder().setRole(Role.TOOL).setToolCallId("c1").addContent(text("42"))).build(),
            "messages[1].role: TOOL must follow an ASSISTANT message with tool_calls"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(toolCall("c1", "f", "{}"))
            .addMessages(Message.newBuilder().setRole(Role.TOOL).setToolCallId("c2").addContent(text("42"))).build(), "messages[2].tool_call_id: 'c2' names no tool call of messages[1]"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(toolCall("c1", "f", "[]"))
            .addMessages(Message.newBuilder().setRole(Role.TOOL).setToolCallId("c1").addContent(text("42"))).build(), "messages[1].tool_calls[0].arguments: must be a JSON object"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a")).toBuilder().setToolCallId("c1")).build(), "messages[0].tool_call_id: only TOOL messages"),
        Arguments.of(withTools(Tool.newBuilder().setName("f").build()), "tools: this model's template (SPHINX's fixed form) takes no tools"),
        Arguments.of(GenerateRequest.newBuilder().addMessages(user(text("a"))).addMessages(toolCall("c1", "f", "{}"))
            .addMessages(Message.newBuilder().setRole(Role.TOOL).setToolCallId("c1").addContent(text("42"))).build(), "messages[1].tool_calls: this model's template"),
        Arguments.of(ask(SamplingParams.newBuilder().setConstraint(Constraint.getDefaultInstance()).build()), "sampling.constraint: set one of"),
        Arguments.of(ask(SamplingParams.newBuilder().setConstraint(Constraint.newBuilder().setRegex("a".repeat(5000))).build()), "sampling.constraint.regex: at most 4096"),
        Arguments.of(ask(SamplingParams.newBuilder().setConstraint(Constraint.newBuilder().setChoice(Choices.getDefaultInstance())).build()), "sampling.constraint.choice.values: 1 to 1024"),
        Arguments.of(ask(SamplingParams.newBuilder().setConstraint(Constraint.newBuilder().setJsonSchema("{\"type\": ")).build()), "sampling.constraint.json_schema: is not valid JSON"),
        Arguments.of(ask(SamplingParams.newBuilder().setIgnoreEos(true).setConstraint(Constraint.newBuilder().setJsonObject(true)).build()), "sampling.ignore_eos: cannot be combined with a constraint"));
  }

  private static GenerateRequest withTools(Tool... tools) {
    return GenerateRequest.newBuilder().addMessages(user(text("Hi"))).addAllTools(List.of(tools)).build();
  }

  private static Message toolCall(String id, String name, String arguments) {
    return Message.newBuilder().setRole(Role.ASSISTANT).addToolCalls(ToolCall.newBuilder().setId(id).setName(name).setArguments(arguments)).build();
  }

  @ParameterizedTest
  @MethodSource("invalidRequests")
  void generate_invalidField_invalidArgumentNamingIt(GenerateRequest request, String expected) {
    StatusRuntimeException e = generateFails(request);
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.getStatus().toString());
    assertTrue(e.getStatus().getDescription().startsWith(expected), "expected '" + expected + "…', got '" + e.getStatus().getDescription() + "'");
  }

  @Test
  void generate_notAnImage_invalidArgumentNamingContent() {
    StatusRuntimeException e = generateFails(GenerateRequest.newBuilder().addMessages(user(text("What is this?"), imageContent("GIF? no".getBytes()))).build());
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().startsWith("messages[0].content[1].image: not an image"), e.getStatus().getDescription());
  }

  @Test
  void generate_unknownDigest_notFoundSayingResend() {
    String unknown = ImageDigest.of("never sent".getBytes());
    StatusRuntimeException e = generateFails(GenerateRequest.newBuilder().addMessages(user(digest(unknown), text("x"))).build());
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().startsWith("messages[0].content[0].image_digest: image " + unknown + " is not held"), e.getStatus().getDescription());
    assertTrue(e.getStatus().getDescription().contains("resend the image bytes"), e.getStatus().getDescription());
  }
}
