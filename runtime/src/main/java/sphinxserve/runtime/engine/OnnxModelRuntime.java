package sphinxserve.runtime.engine;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantLock;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.api.TextTokenizer;
import sphinxserve.kvcache.KvCacheLayout;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.tokenizer.HfTextTokenizer;

/**
 * The ONNX Runtime implementation of {@link ModelRuntime}: a vision session and a decoder session over one
 * bundle, the decoder's KV pools being the caller's {@link KvCacheStorage}.
 *
 * <p>How a step runs: {@link StepInputs} writes the batch's index tensors into reusable direct buffers; the
 * per-layer pools are wrapped once, at open, as tensors over the storage's native-order buffers, and each
 * is passed both as {@code past_*} input and as the pinned {@code present_*} output, so the graph's
 * ScatterND writes this step's K/V into the pool in place; logits land in a pinned direct buffer that
 * {@link StepOutput} reads without another copy.
 *
 * <p>Threading: {@link #step} runs on the engine thread only; {@link #encodeViews} may run concurrently from
 * any thread (ONNX Runtime sessions are safe for concurrent {@code run} calls, and the two use different
 * sessions and buffers).
 *
 * <p>Sharing the cores ({@link RuntimeOptions#shareCores}, the default): each session's intra-op pool spans every
 * core, so a vision run beside a decoder step would oversubscribe them two to one, and an ORT parallel section
 * waits for its slowest worker, so a descheduled thread stalls the whole step: inter-token latency spikes while
 * an image is encoded. Instead the two take turns on a fair lock: a step holds it for its runs, an encoding
 * holds it for one view at a time, so an encoding waits for at most one step and a running decode waits for
 * at most one view (docs/PERFORMANCE.md, "Vision encoding beside decoding").
 */
public final class OnnxModelRuntime implements ModelRuntime {

  private final ModelSpec spec;
  private final KvCacheLayout kvLayout;
  private final OrtEnvironment env = OrtEnvironments.get();
  private final OrtSession vision;
  private final OrtSession decoder;
  /** The int4 decoder at accuracy level 0 for runs of many rows ({@link WideBatchDecoder}); null otherwise. */
  private final OrtSession wideDecoder;
  /** The weights' memory, session by session, as opened. */
  private final ModelMemory memory;
  private final TextTokenizer tokenizer;
  private final OnnxTensor[] pools; // past_key.0, past_value.0, past_key.1, ...
  private final Map<String, OnnxTensor> poolInputs = new HashMap<>();
  private final StepInputs inputs;
  private final StepTimer timer = new StepTimer();
  private FloatBuffer logits;
  private final LogitsView logitsView = new LogitsView();
  private volatile boolean closed;
  /** Held by every ORT run when {@code shareCores}; fair, so the engine and the encoder alternate (class comment). */
  private final ReentrantLock cores = new ReentrantLock(true);
  private final boolean shareCores;

  private OnnxModelRuntime(Bundle bundle, RuntimeOptions options, KvCacheStorage storage) {
    this.spec = bundle.spec();
    this.kvLayout = storage.layout();
    this.shareCores = options.shareCores();
    checkStorage(spec, kvLayout);
    OrtSession visionSession = null;
    OrtSession decoderSession = null;
    OrtSession wideSession = null;
    HfTextTokenizer loadedTokenizer = null;
    try {
      if (spec.acceptsImages()) {
        visionSession = Sessions.open(env, bundle.visionFile(), options);
        GraphContract.checkVision(visionSession, spec, bundle.visionFile().getFileName().toString());
      }
      decoderSession = Sessions.open(env, bundle.decoderFile(), options);
      GraphContract.checkDecoder(decoderSession, spec, bundle.decoderFile().getFileName().toString());
      if (options.wideBatchSession() && bundle.manifest().hasQuantization()) {
        wideSession = WideBatchDecoder.openIfUseful(env, bundle.decoderFile(), options);
        if (wideSession != null) GraphContract.checkDecoder(wideSession, spec, bundle.decoderFile().getFileName() + " (wide-batch variant)");
      }
      loadedTokenizer = loadTokenizer(bundle.tokenizerFile());
      if (loadedTokenizer.vocabSize() > spec.vocabSize()) {
        throw new BundleException(bundle.tokenizerFile() + ": vocabulary of " + loadedTokenizer.vocabSize() + " tokens exceeds decoder.vocab_size " + spec.vocabSize());
      }
      this.pools = wrapPools(storage);
    } catch (RuntimeException e) {
      closeQuietly(visionSession, decoderSession, wideSession, loadedTokenizer);
      throw e;
    }
    this.vision = visionSession;
    this.decoder = decoderSession;
    this.wideDecoder = wideSession;
    this.memory = modelMemory(bundle, wideSession != null);
    this.tokenizer = loadedTokenizer;
    this.inputs = new StepInputs(spec.vocabSize(), spec.hiddenSize(), kvLayout.blockSize());
    this.logits = StepInputs.floats(spec.vocabSize());
  }

  /**
   * Opens {@code bundle} over {@code storage}, whose layout must match the bundle's decoder (layers, KV heads,
   * head width; any block size and block count). The caller keeps ownership of {@code storage}.
   */
  public static OnnxModelRuntime open(Bundle bundle, RuntimeOptions options, KvCacheStorage storage) {
    return new OnnxModelRuntime(bundle, options, storage);
  }

  /**
   * The memory {@link #open} would take for {@code bundle}'s weights with {@code options}, session by session: known
   * before the KV pool is sized and allocated, which happens before the runtime opens over it.
   */
  public static ModelMemory modelMemory(Bundle bundle, RuntimeOptions options) {
    return modelMemory(bundle, options.wideBatchSession() && bundle.manifest().hasQuantization());
  }

  /** The memory this runtime's sessions hold for their weights ({@link #modelMemory(Bundle, RuntimeOptions)}). */
  public ModelMemory modelMemory() {
    return memory;
  }

  private static ModelMemory modelMemory(Bundle bundle, boolean wide) {
    long vision = 0;
    if (bundle.spec().acceptsImages()) {
      String graph = bundle.manifest().getVision().getFile();
      for (String file : bundle.manifest().getFilesMap().keySet()) {
        if (file.equals(graph) || file.startsWith(graph + ".")) vision += fileBytes(bundle.directory().resolve(file)); // + its external data
      }
    }
    long tokenizer = fileBytes(bundle.tokenizerFile());
    long decoder = bundle.bytesOnDisk() - vision - tokenizer; // the decoder's graph, its external data, anything else listed
    long wideBytes = wide ? WideBatchDecoder.extraBytes(bundle.decoderFile()) : 0;
    return new ModelMemory(decoder, wideBytes, vision, tokenizer);
  }

  private static long fileBytes(java.nio.file.Path file) {
    try {
      return java.nio.file.Files.size(file);
    } catch (java.io.IOException e) {
      throw new BundleException(file + ": cannot be read: " + e.getMessage(), e);
    }
  }

  /** The KV layout a pool for {@code spec} needs, for {@code numBlocks} blocks of {@code blockSize} tokens. */
  public static KvCacheLayout kvLayoutFor(ModelSpec spec, int blockSize, int numBlocks) {
    return new KvCacheLayout(spec.numLayers(), spec.numKvHeads(), spec.headDim(), blockSize, numBlocks);
  }

  @Override
  public ModelSpec spec() {
    return spec;
  }

  @Override
  public TextTokenizer tokenizer() {
    return tokenizer;
  }

  /** Cumulative timings of {@link #step}: total, inside ORT's run, input building. */
  public StepTimer timer() {
    return timer;
  }

  @Override
  public float[] encodeViews(float[] pixels, int numViews) {
    if (vision == null) throw new UnsupportedOperationException("a text-only model has no vision encoder");
    int s = spec.vision().viewSize();
    long expected = (long) numViews * 3 * s * s;
    if (numViews < 1 || pixels.length != expected) {
      throw new IllegalArgumentException("pixels: " + pixels.length + " floats for " + numViews + " views of 3×" + s + "×" + s);
    }
    if (!shareCores) return encode(pixels, 0, numViews);
    int floatsPerView = 3 * s * s;
    float[] embeddings = null;
    for (int v = 0; v < numViews; v++) {
      float[] view;
      cores.lock();
      try {
        view = encode(pixels, v * floatsPerView, 1);
      } finally {
        cores.unlock();
      }
      if (embeddings == null) embeddings = new float[view.length * numViews];
      System.arraycopy(view, 0, embeddings, v * view.length, view.length);
    }
    return embeddings;
  }

  /** One vision run over {@code numViews} views starting at float {@code offset} of {@code pixels}. */
  private float[] encode(float[] pixels, int offset, int numViews) {
    int s = spec.vision().viewSize();
    FloatBuffer views = FloatBuffer.wrap(pixels, offset, numViews * 3 * s * s).slice();
    try (OnnxTensor input = OnnxTensor.createTensor(env, views, new long[] {numViews, 3, s, s});
        OrtSession.Result result = vision.run(Map.of("pixel_values", input))) {
      FloatBuffer out = ((OnnxTensor) result.get(0)).getFloatBuffer();
      float[] embeddings = new float[out.remaining()];
      out.get(embeddings);
      return embeddings;
    } catch (OrtException e) {
      throw new IllegalStateException("vision encoder failed: " + e.getMessage(), e);
    }
  }

  /**
   * Runs one step. The graph pads every sequence's queries to the longest chunk of its run and every history to
   * the longest block table of its run, so a batch is split into several runs where that pays: prefill chunks
   * apart from decodes (rather than padding every decode to the chunk's length), and decodes into length buckets
   * ({@link #bucketDecodes}) rather than padding every history to the longest one. Logits rows keep the batch's
   * order.
   */
  @Override
  public StepOutput step(List<SequenceStep> batch) {
    if (batch.isEmpty()) throw new IllegalArgumentException("a step needs at least one sequence");
    if (!shareCores) return runStep(batch);
    cores.lock();
    try {
      return runStep(batch);
    } finally {
      cores.unlock();
    }
  }

  /**
   * What one more decoder run costs, in padded history tokens (sequences × longest history of the run, in
   * blocks × block size). Measured on the bench bundle (hidden 512, 8 layers, 2 KV heads of 64; 2 cores;
   * bin/bench-decoder --ragged-only, docs/PERFORMANCE.md): a run at batch 1, context 16 takes 9.8 ms, nearly
   * all of it independent of the batch (reading the weights, ~400 kernel launches); splitting rows between runs
   * costs 6–9 ms more than one run of them all. Each history token a run gathers costs 1.4–1.6 µs (Gather of
   * K and V, QK and AV, all layers) while the run's gathered history is small, 2.2–2.5 µs once it outgrows the
   * cache (1 KiB of K/V per token and layer here; 32 at 128 → 32 at 512). So a split pays when it removes more
   * than ~9.8 ms / 2.4 µs ≈ 4,000 padded tokens. Checked at the boundary: 31 at 128 beside 1 at 256 (3,968
   * padded) is 52–59 ms in one run, 55–56 in two; 16 at 256 beside 16 at 512 (4,096) 77–79 ms in one, 66–73
   * in two; 31 at 128 beside 1 at 4,000 (~120,000) 240–290 ms in one, 65–77 in two. Both sides grow with the model (weights per run,
   * layers × KV width per token), so the ratio is a fair guess for other models; a wrong guess near the
   * boundary costs a few ms.
   */
  static final int RUN_COST_TOKENS = 4_000;

  /** {@link #RUN_COST_TOKENS}; tests lower it to split the test bundle's small batches. */
  int runCostTokens = RUN_COST_TOKENS;

  /** {@link WideBatchDecoder#WIDE_ROWS}; tests move it to force either session. */
  int wideRows = WideBatchDecoder.WIDE_ROWS;

  /** Runs that took the wide session (tests). */
  long wideRuns;

  /** Whether this runtime has a wide-batch session (an int4 bundle). */
  public boolean hasWideBatchSession() {
    return wideDecoder != null;
  }

  private long[] decodeOrder = new long[64];
  private final List<SequenceStep> group = new ArrayList<>();
  private int[] rowOf = new int[64];

  private StepOutput runStep(List<SequenceStep> batch) {
    int n = batch.size();
    int numRows = 0;
    for (SequenceStep step : batch) if (step.wantLogits()) numRows++;
    // Every run writes at least one row (a throw-away one when none of its sequences wants logits).
    if (logits.capacity() < (numRows + 2) * spec.vocabSize()) logits = StepInputs.floats((numRows + 2) * 2 * spec.vocabSize());
    if (logitsView.rowOffsets.length < numRows) logitsView.rowOffsets = new int[Math.max(numRows, 2 * logitsView.rowOffsets.length)];
    if (rowOf.length < n) rowOf = new int[Math.max(n, 2 * rowOf.length)];
    if (decodeOrder.length < n) decodeOrder = new long[Math.max(n, 2 * decodeOrder.length)];

    // Decodes sorted by history length (blocks << 32 | batch index), then cut into buckets.
    int blockSize = kvLayout.blockSize();
    int d = 0;
    for (int i = 0; i < n; i++) {
      SequenceStep step = batch.get(i);
      if (step.numTokens() == 1) decodeOrder[d++] = (long) ((step.endPosition() + blockSize - 1) / blockSize) << 32 | i;
    }
    Arrays.sort(decodeOrder, 0, d);
    int[] cuts = bucketDecodes(decodeOrder, d, blockSize, runCostTokens);
    int row = 0;
    for (int c = 0; c + 1 < cuts.length; c++) {
      group.clear();
      for (int k = cuts[c]; k < cuts[c + 1]; k++) group.add(batch.get((int) decodeOrder[k]));
      run(group, row);
      for (int k = cuts[c]; k < cuts[c + 1]; k++) {
        int i = (int) decodeOrder[k];
        if (batch.get(i).wantLogits()) rowOf[i] = row++; // the run's rows follow its sequences' order
      }
    }
    if (d < n) {
      group.clear();
      for (SequenceStep step : batch) if (step.numTokens() != 1) group.add(step);
      run(group, row);
      for (int i = 0; i < n; i++) if (batch.get(i).numTokens() != 1 && batch.get(i).wantLogits()) rowOf[i] = row++;
    }
    int r = 0;
    for (int i = 0; i < n; i++) if (batch.get(i).wantLogits()) logitsView.rowOffsets[r++] = rowOf[i];
    logitsView.numRows = numRows;
    return logitsView;
  }

  /**
   * Cuts the {@code count} decodes of {@code sorted} (ascending history blocks in the high half) into runs that
   * minimise the modelled cost: per run {@code runCost} (tokens, {@link #RUN_COST_TOKENS}) plus its padded history, sequences × its
   * longest history (the rest of a decode's cost does not depend on the split). Runs are contiguous in the
   * sorted order, which an optimal cut always is; dynamic programming over the cut points, O(count²) in
   * integers, a few µs for a batch of 64. Returns the cut points, first 0, last {@code count}.
   */
  static int[] bucketDecodes(long[] sorted, int count, int blockSize, int runCost) {
    if (count == 0) return new int[] {0};
    long[] best = new long[count + 1];
    int[] from = new int[count + 1];
    for (int j = 1; j <= count; j++) {
      long longest = (sorted[j - 1] >>> 32) * blockSize;
      best[j] = Long.MAX_VALUE;
      for (int i = 0; i < j; i++) {
        long cost = best[i] + runCost + (j - i) * longest;
        if (cost < best[j]) {
          best[j] = cost;
          from[j] = i;
        }
      }
    }
    int runs = 0;
    for (int j = count; j > 0; j = from[j]) runs++;
    int[] cuts = new int[runs + 1];
    for (int j = count, c = runs; j > 0; j = from[j]) cuts[c--] = j;
    return cuts;
  }

  /**
   * One decoder run over {@code group}, its logits written from buffer row {@code firstRow}: one row per sequence
   * that wants logits, in group order (at least one: the graph always computes one).
   */
  private void run(List<SequenceStep> group, int firstRow) {
    long start = System.nanoTime();
    inputs.fill(group);
    int rows = inputs.logitsRows();
    List<OnnxTensor> created = new ArrayList<>(10);
    try {
      Map<String, OnnxTensor> feed = new HashMap<>(poolInputs);
      int t = inputs.numTokens;
      int b = inputs.numSequences;
      feed.put("input_ids", track(created, longTensor(inputs.inputIds, t)));
      feed.put("positions", track(created, longTensor(inputs.positions, t)));
      feed.put("slot_mapping", track(created, longTensor(inputs.slotMapping, t)));
      feed.put("token_index", track(created, longTensor(inputs.tokenIndex, t)));
      feed.put("query_index", track(created, longTensor(inputs.queryIndex, b, inputs.maxChunk)));
      feed.put("block_tables", track(created, longTensor(inputs.blockTables, b, inputs.maxBlocks)));
      feed.put("logits_index", track(created, longTensor(inputs.logitsIndex, rows)));
      int imageRows = Math.max(1, inputs.numImageRows);
      feed.put("image_embeds", track(created, OnnxTensor.createTensor(env,
          inputs.imageEmbeds.slice(0, imageRows * spec.hiddenSize()), new long[] {imageRows, spec.hiddenSize()})));
      Map<String, OnnxValue> pinned = new HashMap<>(pinnedPools());
      pinned.put("logits", track(created, OnnxTensor.createTensor(env,
          logits.slice(firstRow * spec.vocabSize(), rows * spec.vocabSize()), new long[] {rows, spec.vocabSize()})));
      OrtSession session = wideDecoder != null && t >= wideRows ? wideDecoder : decoder;
      if (session == wideDecoder) wideRuns++;
      long runStart = System.nanoTime();
      try (OrtSession.Result ignored = session.run(feed, pinned)) {
        timer.record(runStart - start, System.nanoTime() - runStart);
      }
    } catch (OrtException e) {
      throw new IllegalStateException("decoder step failed: " + e.getMessage(), e);
    } finally {
      created.forEach(OnnxTensor::close);
    }
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    for (OnnxTensor pool : pools) pool.close();
    closeQuietly(vision, decoder, wideDecoder, (HfTextTokenizer) tokenizer);
  }

  // ---- internals -------------------------------------------------------------------------------------

  private OnnxTensor[] wrapPools(KvCacheStorage storage) {
    OnnxTensor[] wrapped = new OnnxTensor[2 * kvLayout.numLayers()];
    try {
      for (int layer = 0; layer < kvLayout.numLayers(); layer++) {
        wrapped[2 * layer] = OnnxTensor.createTensor(env, storage.keyBuffer(layer), kvLayout.poolShape(), OnnxJavaType.FLOAT);
        wrapped[2 * layer + 1] = OnnxTensor.createTensor(env, storage.valueBuffer(layer), kvLayout.poolShape(), OnnxJavaType.FLOAT);
        poolInputs.put("past_key." + layer, wrapped[2 * layer]);
        poolInputs.put("past_value." + layer, wrapped[2 * layer + 1]);
      }
    } catch (OrtException e) {
      for (OnnxTensor tensor : wrapped) if (tensor != null) tensor.close();
      throw new IllegalStateException("cannot wrap the KV pools: " + e.getMessage(), e);
    }
    return wrapped;
  }

  private Map<String, OnnxTensor> pinnedPools() {
    Map<String, OnnxTensor> pinned = new HashMap<>(2 * kvLayout.numLayers() + 1);
    for (int layer = 0; layer < kvLayout.numLayers(); layer++) {
      pinned.put("present_key." + layer, pools[2 * layer]);
      pinned.put("present_value." + layer, pools[2 * layer + 1]);
    }
    return pinned;
  }

  private OnnxTensor longTensor(java.nio.LongBuffer buffer, long... shape) throws OrtException {
    long count = 1;
    for (long d : shape) count *= d;
    return OnnxTensor.createTensor(env, buffer.slice(0, (int) count), shape);
  }

  private static OnnxTensor track(List<OnnxTensor> created, OnnxTensor tensor) {
    created.add(tensor);
    return tensor;
  }

  private static HfTextTokenizer loadTokenizer(java.nio.file.Path file) {
    try {
      return HfTextTokenizer.load(file);
    } catch (java.io.IOException | RuntimeException e) {
      throw new BundleException(file + ": not a loadable Hugging Face tokenizer: " + e.getMessage(), e);
    }
  }

  private static void checkStorage(ModelSpec spec, KvCacheLayout layout) {
    if (layout.numLayers() != spec.numLayers() || layout.numKvHeads() != spec.numKvHeads() || layout.headDim() != spec.headDim()) {
      throw new IllegalArgumentException("KV storage layout " + layout + " does not match the model (layers "
          + spec.numLayers() + ", kv heads " + spec.numKvHeads() + ", head dim " + spec.headDim() + ")");
    }
  }

  private static void closeQuietly(AutoCloseable... closeables) {
    for (AutoCloseable c : closeables) {
      if (c == null) continue;
      try {
        c.close();
      } catch (Exception ignored) {
        // Closing after a failure or at shutdown: nothing useful to do with a second error.
      }
    }
  }

  /** Reads the pinned logits buffer; valid until the next step. */
  private final class LogitsView implements StepOutput {
    int numRows;
    /** Logical row (batch order) → row of the logits buffer. */
    int[] rowOffsets = new int[64];

    @Override
    public int numRows() {
      return numRows;
    }

    @Override
    public int vocabSize() {
      return spec.vocabSize();
    }

    @Override
    public void copyRow(int row, float[] dst) {
      Objects.checkIndex(row, numRows);
      logits.get(rowOffsets[row] * spec.vocabSize(), dst, 0, spec.vocabSize());
    }

    @Override
    public float logit(int row, int tokenId) {
      Objects.checkIndex(row, numRows);
      return logits.get(rowOffsets[row] * spec.vocabSize() + Objects.checkIndex(tokenId, spec.vocabSize()));
    }
  }
}
