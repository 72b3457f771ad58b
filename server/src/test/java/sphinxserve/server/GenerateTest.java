package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.server.image.ImageDigest;
import sphinxserve.server.testing.NodeExtension;
import sphinxserve.server.testing.TestImages;

/** Generate end to end: real Netty on loopback, the real engine and ONNX Runtime over the TEST bundle. */
final class GenerateTest {

  @RegisterExtension
  static final NodeExtension NODE = new NodeExtension();

  private static final SamplingParams GREEDY_8 = SamplingParams.newBuilder().setMaxTokens(8).setIgnoreEos(true).build();

  @Test
  void generate_streamsDeltasThenAFinalMessageWithUsage() {
    byte[] image = TestImages.png(TestImages.noise(48, 32, 11));
    List<GenerateResponse> responses = generate(request(Content.newBuilder().setImage(ByteString.copyFrom(image)).build(), GREEDY_8));
    GenerateResponse last = responses.getLast();
    assertEquals(FinishReason.LENGTH, last.getFinishReason());
    assertEquals(8, responses.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum());
    assertEquals(8, last.getUsage().getCompletionTokens());
    int imageTokens = NODE.bundle().spec().vision().tokensPerImage();
    assertEquals(imageTokens, last.getUsage().getImageTokens());
    assertTrue(last.getUsage().getPromptTokens() > imageTokens);
    assertTrue(last.getUsage().getTimeToFirstTokenSeconds() > 0);
    assertEquals("req-1", responses.getFirst().getRequestId());
    for (GenerateResponse r : responses.subList(0, responses.size() - 1)) {
      assertEquals(FinishReason.FINISH_REASON_UNSPECIFIED, r.getFinishReason(), "only the last message finishes");
    }
  }

  @Test
  void generate_byDigestAfterBytes_hitsTheImageAndPrefixCachesAndAnswersTheSame() {
    byte[] image = TestImages.png(TestImages.noise(40, 40, 12));
    List<GenerateResponse> first = generate(request(Content.newBuilder().setImage(ByteString.copyFrom(image)).build(), GREEDY_8));
    List<GenerateResponse> second = generate(request(Content.newBuilder().setImageDigest(ImageDigest.of(image)).build(), GREEDY_8));
    assertFalse(first.getLast().getUsage().getImageCacheHit());
    assertTrue(second.getLast().getUsage().getImageCacheHit());
    assertTrue(second.getLast().getUsage().getCachedPromptTokens() >= NODE.bundle().spec().vision().tokensPerImage(),
        "the image span came from the prefix cache: " + second.getLast().getUsage().getCachedPromptTokens());
    assertArrayEquals(tokens(first), tokens(second), "greedy answers agree");
  }

  @Test
  void generate_pastItsDeadline_endsWithTheDeadlineAndFreesEveryBlock() throws Exception {
    SamplingParams longAnswer = SamplingParams.newBuilder().setMaxTokens(900).setIgnoreEos(true).build();
    // At least 1 ms a step: a warm JIT decodes the TEST bundle's 900 tokens in under 300 ms (measured: 37 of 40
    // runs after other test classes had run), which made this test pass or fail by test order.
    NODE.runtime().beforeStep(() -> {
      try {
        Thread.sleep(1);
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
      }
    });
    // The proto allows either ending, and which one a client sees is a race: the engine stops the request at the
    // deadline and the node closes the stream with a last message whose finish_reason is DEADLINE, while the
    // client's own timer ends the call with DEADLINE_EXCEEDED; whichever reaches the client first wins.
    GenerateResponse last = null;
    Status.Code status = Status.Code.OK;
    try {
      Iterator<GenerateResponse> stream = SphinxGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(300, TimeUnit.MILLISECONDS)
          .generate(request(null, longAnswer));
      while (stream.hasNext()) last = stream.next();
    } catch (StatusRuntimeException e) {
      status = e.getStatus().getCode();
    } finally {
      NODE.runtime().beforeStep(() -> {});
    }
    if (status == Status.Code.OK) {
      assertNotNull(last, "a stream that ended OK sent no message");
      assertEquals(FinishReason.DEADLINE, last.getFinishReason(), "a stream that ended OK must say the deadline ended it");
      assertTrue(last.getUsage().getCompletionTokens() < 900, "the deadline cut the answer short: " + last.getUsage());
    } else {
      assertEquals(Status.Code.DEADLINE_EXCEEDED, status);
    }
    waitUntilIdle();
  }

  @Test
  void generate_concurrentCallsAreBatchedAndEachGetsItsOwnAnswer() throws Exception {
    List<Thread> threads = new ArrayList<>();
    List<int[]> answers = new java.util.concurrent.CopyOnWriteArrayList<>();
    long stepsBefore = NODE.backend().stats().numSteps();
    for (int i = 0; i < 6; i++) {
      threads.add(Thread.ofPlatform().start(() -> answers.add(tokens(generate(request(null, GREEDY_8))))));
    }
    for (Thread t : threads) t.join();
    assertEquals(6, answers.size());
    for (int[] answer : answers) assertArrayEquals(answers.getFirst(), answer, "same prompt, greedy: same answer");
    assertTrue(NODE.backend().stats().numSteps() - stepsBefore < 6 * 9, "the calls shared steps");
  }

  @Test
  void generate_sameNewImageTwiceAtOnce_oneVisionRunAndTheSecondIsACacheHit() throws Exception {
    byte[] image = TestImages.png(TestImages.noise(36, 44, 13));
    long hitsBefore = NODE.node().images().numHits();
    int encodesBefore = NODE.runtime().encodeCalls().size();
    // Hold the encoder until the second call has found the first one's encoding in progress: truly at once.
    NODE.runtime().beforeEncode(views -> {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (NODE.node().images().numHits() == hitsBefore && System.nanoTime() < until) Thread.onSpinWait();
    });
    try {
      Content content = Content.newBuilder().setImage(ByteString.copyFrom(image)).build();
      var first = java.util.concurrent.CompletableFuture.supplyAsync(() -> generate(request(content, GREEDY_8)));
      var second = java.util.concurrent.CompletableFuture.supplyAsync(() -> generate(request(content, GREEDY_8)));
      List<GenerateResponse> a = first.get(60, TimeUnit.SECONDS);
      List<GenerateResponse> b = second.get(60, TimeUnit.SECONDS);
      assertEquals(1, NODE.runtime().encodeCalls().size() - encodesBefore, "one vision-encoder run");
      assertEquals(1, NODE.node().images().numHits() - hitsBefore);
      assertTrue(a.getLast().getUsage().getImageCacheHit() != b.getLast().getUsage().getImageCacheHit(), "exactly one is a cache hit");
      assertArrayEquals(tokens(a), tokens(b));
    } finally {
      NODE.runtime().beforeEncode(views -> {});
    }
  }

  @Test
  void generate_badImagesAlongsideHealthyStreams_leaveTheStreamsUntouched() throws Exception {
    byte[] good = TestImages.png(TestImages.noise(40, 24, 14));
    List<GenerateRequest> healthy = List.of(
        request(null, GREEDY_8),
        request(Content.newBuilder().setImage(ByteString.copyFrom(good)).build(), GREEDY_8),
        request(null, SamplingParams.newBuilder().setMaxTokens(24).setIgnoreEos(true).build()));
    List<int[]> alone = new ArrayList<>();
    for (GenerateRequest r : healthy) alone.add(tokens(generate(r)));

    byte[] corrupt = new byte[4096];
    new java.util.Random(15).nextBytes(corrupt);
    System.arraycopy(good, 0, corrupt, 0, 16); // a PNG signature and IHDR start, then garbage
    byte[] truncated = java.util.Arrays.copyOf(good, good.length / 2);
    byte[] bomb = TestImages.pngDeclaring(30_000, 30_000);
    byte[] oversized = new byte[11 << 20]; // over --max-image-bytes (10m), under the 16m message limit
    System.arraycopy(good, 0, oversized, 0, good.length);
    record Bad(byte[] bytes, Status.Code expected) {}
    List<Bad> bad = List.of(new Bad(corrupt, Status.Code.INVALID_ARGUMENT), new Bad(truncated, Status.Code.INVALID_ARGUMENT),
        new Bad(bomb, Status.Code.INVALID_ARGUMENT), new Bad(oversized, Status.Code.INVALID_ARGUMENT));

    List<java.util.concurrent.CompletableFuture<int[]>> streams = new ArrayList<>();
    List<java.util.concurrent.CompletableFuture<Status>> refusals = new ArrayList<>();
    for (int round = 0; round < 2; round++) {
      for (Bad b : bad) {
        refusals.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> {
          try {
            generate(request(Content.newBuilder().setImage(ByteString.copyFrom(b.bytes())).build(), GREEDY_8));
            return Status.OK;
          } catch (StatusRuntimeException e) {
            return e.getStatus();
          }
        }));
      }
      if (round == 0) for (GenerateRequest r : healthy) streams.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> tokens(generate(r))));
    }
    for (int i = 0; i < refusals.size(); i++) {
      Status status = refusals.get(i).get(60, TimeUnit.SECONDS);
      assertEquals(bad.get(i % bad.size()).expected(), status.getCode(), status.toString());
      assertTrue(status.getDescription().startsWith("messages[0].content[0].image: "), status.getDescription());
    }
    for (int i = 0; i < healthy.size(); i++) assertArrayEquals(alone.get(i), streams.get(i).get(60, TimeUnit.SECONDS), "stream " + i);
    waitUntilIdle();
  }

  private static void waitUntilIdle() throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (NODE.backend().stats().numRunning() + NODE.backend().stats().numWaiting() > 0 || NODE.backend().stats().kvUsage() > 0) {
      if (System.nanoTime() > end) throw new AssertionError("the engine still holds the request: " + NODE.backend().stats().kvUsage());
      Thread.sleep(5);
    }
  }

  private static List<GenerateResponse> generate(GenerateRequest request) {
    List<GenerateResponse> out = new ArrayList<>();
    SphinxGrpc.newBlockingStub(NODE.channel()).withDeadlineAfter(60, TimeUnit.SECONDS).generate(request).forEachRemaining(out::add);
    return out;
  }

  private static int[] tokens(List<GenerateResponse> responses) {
    return responses.stream().flatMap(r -> r.getTokenIdsList().stream()).mapToInt(Integer::intValue).toArray();
  }

  private static GenerateRequest request(Content image, SamplingParams sampling) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(image);
    user.addContent(Content.newBuilder().setText("Detect all circles in the image."));
    return GenerateRequest.newBuilder().setRequestId("req-1").addMessages(user).setSampling(sampling).build();
  }
}
