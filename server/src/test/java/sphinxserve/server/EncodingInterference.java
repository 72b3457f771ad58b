package sphinxserve.server;

import com.google.protobuf.ByteString;
import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.PutImageRequest;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import dev.sphinxserve.proto.v1.SphinxGrpc;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.server.SphinxNode;
import sphinxserve.server.config.NodeConfig;
import sphinxserve.server.generate.EngineBackend;
import sphinxserve.server.testing.TestImages;

/**
 * Inter-token latency of running streams while the node encodes new images, with the vision encoder and the
 * decoder running at once (each ORT session with a thread per core) against taking turns on the cores
 * ({@link RuntimeOptions#shareCores}). Part of {@code bin/bench-node} (section {@code itl}).
 *
 * <p>Per mode, on a fresh node over gRPC: {@code numStreams} text streams decode (ignore EOS); after a quiet
 * second, {@code numImages} distinct images are PutImage'd one after another (each a cache miss, so each is
 * decoded, preprocessed and encoded); then a quiet second again. Every gap between two messages of a stream is
 * an ITL sample, counted as "during encoding" when it ends while an image is in flight.
 */
final class EncodingInterference {

  private EncodingInterference() {}

  /** Runs both modes, alternating {@code rounds} times, and prints the table. */
  static void run(Bundle bundle, int numStreams, int numImages, int rounds) throws Exception {
    System.out.printf(Locale.ROOT, "%nITL while images are encoded: %d streams decoding, %d images PutImage'd one after another%n",
        numStreams, numImages);
    System.out.println("  mode          quiet p50/p99 ms   encoding p50/p99/max ms       image encode ms (mean)   tokens");
    for (int r = 0; r < rounds; r++) {
      for (boolean share : new boolean[] {false, true}) {
        Result result = measure(bundle, share, numStreams, numImages, 1000L * r + (share ? 1 : 0));
        System.out.printf(Locale.ROOT, "  %-12s  %6.1f / %6.1f     %7.1f / %7.1f / %7.1f      %8.0f                %d%n",
            share ? "take turns" : "at once", result.quiet(0.5), result.quiet(0.99), result.encoding(0.5), result.encoding(0.99),
            result.encoding(1.0), result.meanEncodeMillis, result.numTokens);
      }
    }
  }

  private record Result(double[] quietMillis, double[] encodingMillis, double meanEncodeMillis, long numTokens) {
    double quiet(double q) {
      return percentile(quietMillis, q);
    }

    double encoding(double q) {
      return percentile(encodingMillis, q);
    }
  }

  private static Result measure(Bundle bundle, boolean shareCores, int numStreams, int numImages, long seed) throws Exception {
    int numBlocks = 1024;
    NodeConfig config = NodeConfig.parse(new String[] {"--port=0", "--kv-blocks=" + numBlocks, "--drain-seconds=1"}, java.util.Map.of());
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu().withShareCores(shareCores), storage)) {
      SphinxNode node = SphinxNode.start(config, bundle, runtime, new EngineBackend(runtime, storage, config));
      ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", node.port()).usePlaintext().build();
      Context.CancellableContext streams = Context.current().withCancellation();
      try {
        List<List<Long>> arrivals = new ArrayList<>();
        for (int i = 0; i < numStreams; i++) {
          List<Long> times = new CopyOnWriteArrayList<>();
          arrivals.add(times);
          GenerateRequest request = GenerateRequest.newBuilder()
              .addMessages(Message.newBuilder().setRole(Role.USER).addContent(Content.newBuilder().setText("Describe stream " + i + ".")))
              .setSampling(SamplingParams.newBuilder().setMaxTokens(4000).setIgnoreEos(true)).build();
          streams.run(() -> SphinxGrpc.newStub(channel).generate(request, new StreamObserver<>() {
            @Override
            public void onNext(GenerateResponse value) {
              times.add(System.nanoTime());
            }

            @Override
            public void onError(Throwable t) {}

            @Override
            public void onCompleted() {}
          }));
        }
        Thread.sleep(1500); // streams admitted and decoding
        List<long[]> windows = new ArrayList<>();
        double encodeMillis = 0;
        SphinxGrpc.SphinxBlockingStub stub = SphinxGrpc.newBlockingStub(channel);
        for (int k = 0; k < numImages; k++) {
          byte[] png = TestImages.png(TestImages.noise(448, 448, seed * 100 + k));
          long start = System.nanoTime();
          stub.withDeadlineAfter(5, TimeUnit.MINUTES).putImage(PutImageRequest.newBuilder().setImage(ByteString.copyFrom(png)).build());
          long end = System.nanoTime();
          windows.add(new long[] {start, end});
          encodeMillis += (end - start) / 1e6;
        }
        Thread.sleep(1000);
        long measuredFrom = windows.getFirst()[0] - TimeUnit.MILLISECONDS.toNanos(1000);
        List<Double> quiet = new ArrayList<>();
        List<Double> encoding = new ArrayList<>();
        long numTokens = 0;
        for (List<Long> times : arrivals) {
          numTokens += times.size();
          for (int i = 1; i < times.size(); i++) {
            long end = times.get(i);
            if (times.get(i - 1) < measuredFrom) continue;
            double gap = (end - times.get(i - 1)) / 1e6;
            boolean during = windows.stream().anyMatch(w -> end >= w[0] && end <= w[1]);
            (during ? encoding : quiet).add(gap);
          }
        }
        return new Result(toArray(quiet), toArray(encoding), encodeMillis / numImages, numTokens);
      } finally {
        streams.cancel(null);
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        node.close();
      }
    }
  }

  private static double[] toArray(List<Double> values) {
    double[] a = values.stream().mapToDouble(Double::doubleValue).toArray();
    Arrays.sort(a);
    return a;
  }

  private static double percentile(double[] sorted, double q) {
    if (sorted.length == 0) return Double.NaN;
    return sorted[Math.min(sorted.length - 1, (int) Math.floor(q * sorted.length))];
  }
}
