package sphinxserve.client;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.GetModelInfoRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.ModelInfo;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.PutImageResponse;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A <b>test double at the network seam</b> for the client's tests: a real grpc-java server (Netty, loopback, port 0)
 * implementing {@link SphinxGrpc.SphinxImplBase} and {@code grpc.health.v1.Health} with scripted replies. It is not
 * the node and decodes nothing; the real node's end-to-end test with this client comes with the server module.
 *
 * <p>What it does like the node: records every request and its headers; remembers the digests of images it was sent
 * (Generate with bytes, PutImage) and answers {@code NOT_FOUND} to an unknown {@code image_digest}; streams one
 * message per delta with the request id on the first and finish reason and usage on a last one. What it does on
 * script: each Generate takes the next {@link Reply} ({@link #script}), or a one-delta answer when none is left.
 *
 * <p>Register per test: {@code @RegisterExtension final ScriptedSphinxServer node = new ScriptedSphinxServer();}.
 * Starts before each test and stops after it.
 */
public final class ScriptedSphinxServer implements BeforeEachCallback, AfterEachCallback {
  /** What the default reply answers. */
  public static final String DEFAULT_ANSWER = "ok";

  /** A request as received, with its headers. */
  public record Received(GenerateRequest request, Metadata headers) {
    public String imageDigestHeader() {
      return headers.get(ImageDigests.HEADER);
    }

    /** The first message's image part: bytes or digest. */
    public Optional<Content> image() {
      return request.getMessagesList().stream().flatMap(m -> m.getContentList().stream())
          .filter(c -> c.getKindCase() != Content.KindCase.TEXT).findFirst();
    }
  }

  /** One step of a scripted reply. */
  public sealed interface Step {}

  /** Sends a delta. */
  public record Emit(String text) implements Step {}

  /** Waits (the handler thread sleeps), to let a client's deadline or cancel act. */
  public record Pause(Duration duration) implements Step {}

  /** Fails the call with a status. */
  public record Fail(Status status) implements Step {}

  /** A scripted reply to one Generate: the steps, then (unless a step failed) a final STOP message. */
  public record Reply(List<Step> steps) {
    public static Reply answer(String... deltas) {
      return new Reply(Arrays.stream(deltas).<Step>map(Emit::new).toList());
    }

    public static Reply fail(Status.Code code) {
      return new Reply(List.of(new Fail(code.toStatus().withDescription("scripted " + code))));
    }

    public static Reply deltasThenFail(Status.Code code, String... deltas) {
      List<Step> steps = new ArrayList<>(answer(deltas).steps());
      steps.add(new Fail(code.toStatus().withDescription("scripted " + code + " mid-stream")));
      return new Reply(steps);
    }

    public static Reply slow(Duration perDelta, String... deltas) {
      List<Step> steps = new ArrayList<>();
      for (String d : deltas) {
        steps.add(new Pause(perDelta));
        steps.add(new Emit(d));
      }
      return new Reply(steps);
    }
  }

  private static final Context.Key<Metadata> HEADERS = Context.key("headers");

  private final ConcurrentLinkedQueue<Reply> scripts = new ConcurrentLinkedQueue<>();
  private final List<Received> received = new CopyOnWriteArrayList<>();
  private final List<Metadata> putImageHeaders = new CopyOnWriteArrayList<>();
  private final Set<String> knownDigests = ConcurrentHashMap.newKeySet();
  private final AtomicInteger cancellations = new AtomicInteger();
  private final AtomicInteger requestIds = new AtomicInteger();
  private final HealthStatusManager health = new HealthStatusManager();
  private Server server;

  @Override
  public void beforeEach(ExtensionContext context) throws IOException {
    start();
  }

  @Override
  public void afterEach(ExtensionContext context) throws InterruptedException {
    stop();
  }

  void start() throws IOException {
    ServerInterceptor captureHeaders = new ServerInterceptor() {
      @Override
      public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
          ServerCallHandler<Q, R> next) {
        return Contexts.interceptCall(Context.current().withValue(HEADERS, headers), call, headers, next);
      }
    };
    health.setStatus("", ServingStatus.SERVING);
    server = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
        .addService(ServerInterceptors.intercept(new Service(), captureHeaders))
        .addService(health.getHealthService())
        .build()
        .start();
  }

  void stop() throws InterruptedException {
    if (server != null) {
      server.shutdownNow();
      server.awaitTermination(5, TimeUnit.SECONDS);
      server = null;
    }
  }

  /** {@code 127.0.0.1:port}. */
  public String target() {
    return InetAddress.getLoopbackAddress().getHostAddress() + ":" + server.getPort();
  }

  /** Queues replies for the next Generate calls, in order. */
  public void script(Reply... replies) {
    scripts.addAll(List.of(replies));
  }

  /** Generate requests received, in order (NOT_FOUND ones included). */
  public List<Received> received() {
    return List.copyOf(received);
  }

  int generateCalls() {
    return received.size();
  }

  List<Metadata> putImageHeaders() {
    return List.copyOf(putImageHeaders);
  }

  /** Calls the client cancelled. */
  int cancellations() {
    return cancellations.get();
  }

  /** Forgets every image, as a node restart or cache eviction would. */
  void forgetImages() {
    knownDigests.clear();
  }

  public void setServing(ServingStatus status) {
    health.setStatus("", status);
  }

  /** A loopback address nothing listens on. */
  public static String deadTarget() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return InetAddress.getLoopbackAddress().getHostAddress() + ":" + socket.getLocalPort();
    }
  }

  private final class Service extends SphinxGrpc.SphinxImplBase {
    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateResponse> responses) {
      Received r = new Received(request, HEADERS.get());
      received.add(r);
      ServerCallStreamObserver<GenerateResponse> out = (ServerCallStreamObserver<GenerateResponse>) responses;
      out.setOnCancelHandler(cancellations::incrementAndGet);
      Optional<Content> image = r.image();
      if (image.isPresent() && image.get().getKindCase() == Content.KindCase.IMAGE_DIGEST
          && !knownDigests.contains(image.get().getImageDigest())) {
        out.onError(Status.NOT_FOUND.withDescription("image_digest " + image.get().getImageDigest()
            + " is not in this node's image cache; send the image bytes").asRuntimeException());
        return;
      }
      image.filter(c -> c.getKindCase() == Content.KindCase.IMAGE)
          .ifPresent(c -> knownDigests.add(ImageDigests.sha256Hex(c.getImage())));
      Reply reply = Optional.ofNullable(scripts.poll()).orElse(Reply.answer(DEFAULT_ANSWER));
      String requestId = request.getRequestId().isEmpty() ? "req-" + requestIds.incrementAndGet()
          : request.getRequestId();
      int completionTokens = 0;
      for (Step step : reply.steps()) {
        if (out.isCancelled()) {
          return;
        }
        switch (step) {
          case Emit e -> {
            GenerateResponse.Builder m = GenerateResponse.newBuilder().setText(e.text()).addTokenIds(7);
            if (completionTokens++ == 0) {
              m.setRequestId(requestId);
            }
            out.onNext(m.build());
          }
          case Pause p -> sleep(p.duration());
          case Fail f -> {
            out.onError(f.status().asRuntimeException());
            return;
          }
        }
      }
      if (!out.isCancelled()) {
        out.onNext(GenerateResponse.newBuilder().setFinishReason(FinishReason.STOP).setUsage(Usage.newBuilder()
            .setPromptTokens(countTexts(request)).setCompletionTokens(completionTokens)).build());
        out.onCompleted();
      }
    }

    @Override
    public void putImage(PutImageRequest request, StreamObserver<PutImageResponse> response) {
      putImageHeaders.add(HEADERS.get());
      BufferedImage decoded;
      try {
        decoded = ImageIO.read(new ByteArrayInputStream(request.getImage().toByteArray()));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      if (decoded == null) {
        response.onError(Status.INVALID_ARGUMENT.withDescription("image: not a decodable image")
            .asRuntimeException());
        return;
      }
      String digest = ImageDigests.sha256Hex(request.getImage());
      boolean cached = !knownDigests.add(digest);
      response.onNext(PutImageResponse.newBuilder().setDigest(digest).setWidth(decoded.getWidth())
          .setHeight(decoded.getHeight()).setCached(cached).build());
      response.onCompleted();
    }

    @Override
    public void getModelInfo(GetModelInfoRequest request, StreamObserver<ModelInfo> response) {
      response.onNext(ModelInfo.newBuilder().setBundleId("scripted").setArchitecture("sphinx-scripted")
          .setImageSize(448).setGrid(2).setNumViews(5).setTokensPerView(291).setImageTokens(1455)
          .setMaxContextTokens(4096).build());
      response.onCompleted();
    }
  }

  private static int countTexts(GenerateRequest request) {
    int n = 0;
    for (Message m : request.getMessagesList()) {
      n += m.getContentCount();
    }
    return n;
  }

  private static void sleep(Duration d) {
    try {
      Thread.sleep(d);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
