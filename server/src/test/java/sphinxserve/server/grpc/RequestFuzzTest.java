package sphinxserve.server.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.CallOptions;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.util.EnumSet;
import java.util.Iterator;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import sphinxserve.server.testing.NodeExtension;

/**
 * Fuzzes the request decoding and validation path of a real node: random bytes and mutated valid protobuf sent
 * as the Generate request through a raw gRPC call (a byte[] marshaller), and random bytes on a raw TCP
 * connection. The node must answer every call with a status that blames the request, never INTERNAL or
 * UNKNOWN, and a stream running meanwhile on the same connection must finish as it would have alone.
 */
final class RequestFuzzTest {

  /** Codes a malformed or odd request may get; INTERNAL and UNKNOWN would mean the node failed. */
  private static final Set<Status.Code> ALLOWED = EnumSet.of(Status.Code.OK, Status.Code.INVALID_ARGUMENT,
      Status.Code.NOT_FOUND, Status.Code.RESOURCE_EXHAUSTED, Status.Code.DEADLINE_EXCEEDED);

  private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(byte[] value) {
      return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  };

  /** Generate with raw bytes both ways. */
  private static final MethodDescriptor<byte[], byte[]> RAW_GENERATE = SphinxGrpc.getGenerateMethod().toBuilder(BYTES, BYTES).build();

  private static final GenerateRequest VALID = GenerateRequest.newBuilder().setRequestId("fuzz")
      .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("What is in the picture?")))
      .setSampling(SamplingParams.newBuilder().setMaxTokens(3).setTemperature(0.7f).setTopK(5).setSeed(1).addStop("###"))
      .build();

  private static NodeExtension node;

  @BeforeContainer
  static void startNode() {
    node = new NodeExtension("--max-turns=8", "--max-prompt-chars=2000").start();
  }

  @AfterContainer
  static void stopNode() throws InterruptedException {
    node.stop();
  }

  /** Sends {@code bytes} as a Generate request and reads the whole answer; the call's final status. */
  private static Status send(byte[] bytes) {
    try {
      Iterator<byte[]> it = ClientCalls.blockingServerStreamingCall(node.channel(), RAW_GENERATE,
          CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), bytes);
      while (it.hasNext()) it.next();
      return Status.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus();
    }
  }

  @Property(tries = 200)
  void generate_randomBytes_neverInternal(@ForAll("randomBytes") byte[] bytes) {
    Status status = send(bytes);
    assertTrue(ALLOWED.contains(status.getCode()), status.toString());
  }

  @Property(tries = 300)
  void generate_mutatedValidRequest_neverInternal(@ForAll("mutated") byte[] bytes) {
    Status status = send(bytes);
    assertTrue(ALLOWED.contains(status.getCode()), status.toString());
  }

  /** PutImage with raw bytes both ways. */
  private static final MethodDescriptor<byte[], byte[]> RAW_PUT_IMAGE = SphinxGrpc.getPutImageMethod().toBuilder(BYTES, BYTES).build();

  @Property(tries = 100)
  void putImage_randomBytes_neverInternal(@ForAll("randomBytes") byte[] bytes) {
    Status status;
    try {
      ClientCalls.blockingUnaryCall(node.channel(), RAW_PUT_IMAGE, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), bytes);
      status = Status.OK;
    } catch (StatusRuntimeException e) {
      status = e.getStatus();
    }
    assertTrue(ALLOWED.contains(status.getCode()), status.toString());
  }

  @Provide
  Arbitrary<byte[]> randomBytes() {
    return Arbitraries.bytes().array(byte[].class).ofMaxSize(512);
  }

  /** The valid request's bytes with a few bytes flipped, inserted, deleted, or cut short. */
  @Provide
  Arbitrary<byte[]> mutated() {
    byte[] valid = VALID.toByteArray();
    return Arbitraries.longs().map(seed -> {
      Random random = new Random(seed);
      byte[] b = valid.clone();
      int numEdits = 1 + random.nextInt(4);
      for (int i = 0; i < numEdits && b.length > 0; i++) {
        int at = random.nextInt(b.length);
        switch (random.nextInt(4)) {
          case 0 -> b[at] = (byte) random.nextInt(256);
          case 1 -> b = java.util.Arrays.copyOf(b, at); // truncated
          case 2 -> { // inserted byte
            byte[] longer = new byte[b.length + 1];
            System.arraycopy(b, 0, longer, 0, at);
            longer[at] = (byte) random.nextInt(256);
            System.arraycopy(b, at, longer, at + 1, b.length - at);
            b = longer;
          }
          default -> { // deleted byte
            byte[] shorter = new byte[b.length - 1];
            System.arraycopy(b, 0, shorter, 0, at);
            System.arraycopy(b, at + 1, shorter, at, b.length - at - 1);
            b = shorter;
          }
        }
      }
      return b;
    });
  }

  @Example
  void generate_malformedProtobuf_isInvalidArgumentNamingTheMessage() {
    Status status = send(new byte[] {(byte) 0x0a, (byte) 0xff}); // field 1, length past the end
    assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode(), status.toString());
    assertEquals("request: not a valid sphinx.v1.GenerateRequest protobuf message", status.getDescription());
  }

  @Example
  void generate_overMaxTurnsOrPromptChars_isInvalidArgumentNamingTheLimit() {
    GenerateRequest.Builder many = VALID.toBuilder();
    for (int i = 0; i < 8; i++) {
      many.addMessages(Message.newBuilder().setRole(i % 2 == 0 ? Role.ASSISTANT : Role.USER).addContent(Content.newBuilder().setText("x")));
    }
    Status turns = send(many.build().toByteArray());
    assertEquals(Status.Code.INVALID_ARGUMENT, turns.getCode());
    assertEquals("messages: at most 8 messages (max-turns), got 9", turns.getDescription());
    GenerateRequest longText = VALID.toBuilder().setMessages(0, Message.newBuilder().setRole(Role.USER)
        .addContent(Content.newBuilder().setText("y".repeat(1500))).addContent(Content.newBuilder().setText("z".repeat(501)))).build();
    Status chars = send(longText.toByteArray());
    assertEquals(Status.Code.INVALID_ARGUMENT, chars.getCode());
    assertEquals("messages: 2001 characters of text, at most 2000 (max-prompt-chars)", chars.getDescription());
  }

  /** Garbage calls on the stream's own connection, and garbage bytes on a raw TCP connection, leave a stream intact. */
  @Example
  void garbage_duringAStream_leavesItUndisturbed() throws Exception {
    GenerateRequest greedy = VALID.toBuilder().setSampling(SamplingParams.newBuilder().setMaxTokens(48).setIgnoreEos(true)).build();
    String alone = text(SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(30, TimeUnit.SECONDS).generate(greedy), null);

    node.runtime().beforeStep(() -> sleepMillis(3));
    try {
      Iterator<GenerateResponse> stream = SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(30, TimeUnit.SECONDS).generate(greedy);
      GenerateResponse first = stream.next();
      Random random = new Random(42);
      for (int i = 0; i < 40; i++) {
        byte[] garbage = new byte[random.nextInt(200)];
        random.nextBytes(garbage);
        assertFalse(Set.of(Status.Code.INTERNAL, Status.Code.UNKNOWN).contains(send(garbage).getCode()));
      }
      try (Socket raw = new Socket("127.0.0.1", node.node().port()); OutputStream out = raw.getOutputStream()) {
        byte[] garbage = new byte[4096];
        random.nextBytes(garbage);
        out.write(garbage);
        out.flush();
      } catch (IOException e) {
        // the node may close the connection before all of it is written: that is the point
      }
      assertEquals(alone, text(stream, first), "the stream's answer is unchanged");
      assertEquals(node.bundle().spec().bundleId(), SphinxGrpc.newBlockingStub(node.channel()).withDeadlineAfter(10, TimeUnit.SECONDS)
          .getModelInfo(GetModelInfoRequest.getDefaultInstance()).getBundleId(), "the node still serves");
    } finally {
      node.runtime().beforeStep(() -> {});
    }
  }

  private static String text(Iterator<GenerateResponse> stream, GenerateResponse first) {
    StringBuilder sb = new StringBuilder();
    GenerateResponse last = first;
    if (first != null) sb.append(first.getText());
    while (stream.hasNext()) {
      last = stream.next();
      sb.append(last.getText());
    }
    assertEquals(FinishReason.LENGTH, last.getFinishReason());
    return sb.toString();
  }

  private static void sleepMillis(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
