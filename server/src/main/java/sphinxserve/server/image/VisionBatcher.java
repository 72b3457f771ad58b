package sphinxserve.server.image;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.VisionSpec;

/**
 * Runs the vision encoder over preprocessed images, several at a time.
 *
 * <p>How: preprocessed images wait in a queue; one thread takes the first, drains whatever else is waiting
 * (up to {@code maxBatch} images), concatenates their views into one {@code [numImages × numViews, 3, S, S]}
 * tensor, calls {@link ModelRuntime#encodeViews} once and splits the rows back per image. Images that arrive
 * while a batch runs form the next batch, so under load the batch grows by itself and idle latency stays
 * one encoder call (no timer). A failed call fails every image of its batch; the thread keeps serving.
 */
final class VisionBatcher implements AutoCloseable {

  private record Job(String digest, int width, int height, float[] pixels, CompletableFuture<EncodedImage> result) {}

  private static final Job STOP = new Job("", 0, 0, new float[0], new CompletableFuture<>());

  private final ModelRuntime runtime;
  private final VisionSpec vision;
  private final int hiddenSize;
  private final int maxBatch;
  private final BlockingQueue<Job> queue = new LinkedBlockingQueue<>();
  private final Thread thread;

  VisionBatcher(ModelRuntime runtime, int maxBatch) {
    this.runtime = runtime;
    this.vision = runtime.spec().vision();
    this.hiddenSize = runtime.spec().hiddenSize();
    this.maxBatch = maxBatch;
    this.thread = Thread.ofPlatform().name("sphinx-vision").daemon().start(this::run);
  }

  /** Queues one image's views; the future completes when its batch is encoded. */
  CompletableFuture<EncodedImage> submit(String digest, int width, int height, float[] pixels) {
    CompletableFuture<EncodedImage> result = new CompletableFuture<>();
    if (!thread.isAlive()) {
      result.completeExceptionally(new IllegalStateException("vision encoder stopped"));
      return result;
    }
    queue.add(new Job(digest, width, height, pixels, result));
    return result;
  }

  /** Images waiting for the encoder. */
  int numQueued() {
    return queue.size();
  }

  private void run() {
    List<Job> batch = new ArrayList<>(maxBatch);
    while (true) {
      try {
        Job first = queue.take();
        if (first == STOP) break;
        batch.add(first);
        queue.drainTo(batch, maxBatch - 1);
        boolean stop = batch.removeIf(j -> j == STOP);
        encode(batch);
        batch.clear();
        if (stop) break;
      } catch (InterruptedException e) {
        break;
      }
    }
    for (Job j : queue) j.result.completeExceptionally(new IllegalStateException("vision encoder stopped"));
  }

  private void encode(List<Job> batch) {
    try {
      int perImage = batch.getFirst().pixels.length;
      float[] pixels = new float[perImage * batch.size()];
      for (int i = 0; i < batch.size(); i++) System.arraycopy(batch.get(i).pixels, 0, pixels, i * perImage, perImage);
      float[] out = runtime.encodeViews(pixels, batch.size() * vision.numViews());
      int numTokens = vision.tokensPerImage();
      int floats = numTokens * hiddenSize;
      if (out.length != floats * batch.size()) {
        throw new IllegalStateException("vision encoder returned " + out.length + " floats for " + batch.size()
            + " images of " + numTokens + " × " + hiddenSize);
      }
      for (int i = 0; i < batch.size(); i++) {
        Job j = batch.get(i);
        float[] rows = new float[floats];
        System.arraycopy(out, i * floats, rows, 0, floats);
        j.result.complete(new EncodedImage(new ImageEmbeddings(j.digest, numTokens, hiddenSize, rows), j.width, j.height));
      }
    } catch (RuntimeException | Error e) {
      for (Job j : batch) j.result.completeExceptionally(e);
    }
  }

  /**
   * Stops the thread after the batch in progress, waiting up to {@code maxWait} for the encoder call in flight;
   * images still queued fail. True when the thread ended; false (logged) while an encoder call outlives the wait,
   * so the runtime it runs in must stay open.
   */
  boolean close(java.time.Duration maxWait) {
    queue.add(STOP);
    try {
      thread.join(Math.max(1, maxWait.toMillis()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (thread.isAlive()) {
      System.getLogger(VisionBatcher.class.getName()).log(System.Logger.Level.ERROR, "the vision encoder call in flight has not returned "
          + maxWait.toMillis() + " ms after close; the model runtime must stay open (the call runs in it)");
      return false;
    }
    return true;
  }

  /** As {@link #close(java.time.Duration)} with {@link ImageCache#CLOSE_WAIT}. */
  @Override
  public void close() {
    close(ImageCache.CLOSE_WAIT);
  }

  /** Whether the encoder thread has ended: no encoder call runs or will start. */
  boolean isStopped() {
    return !thread.isAlive();
  }
}
