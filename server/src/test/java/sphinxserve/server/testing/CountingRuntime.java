package sphinxserve.server.testing;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.IntConsumer;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.api.TextTokenizer;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.testing.TestBundles;

/**
 * A decorator over a real {@link ModelRuntime} that records every {@link #encodeViews} call's view count and
 * can run a hook before {@code encodeViews} or {@code step} delegates (to line up a batch, to make the engine
 * slower while a test holds it busy, or to throw as a failing runtime would) and rewrite a step's logits rows
 * (NaN rows). Not a fake: every call reaches the real runtime.
 */
public final class CountingRuntime implements ModelRuntime {

  private final ModelRuntime delegate;
  /** What the runtime writes into, closed after it ({@link #overTestBundle}); null when the caller owns it. */
  private final KvCacheStorage ownedKv;
  private final List<Integer> numViewsPerCall = new CopyOnWriteArrayList<>();
  private volatile IntConsumer beforeEncode = numViews -> {};
  private volatile Runnable beforeStep = () -> {};
  private volatile RowRewriter rowRewriter = null;

  /** Rewrites logits row {@code row} of a step, whose sequence step is {@code step}, in place. */
  @FunctionalInterface
  public interface RowRewriter {
    void rewrite(SequenceStep step, float[] logits);
  }

  public CountingRuntime(ModelRuntime delegate) {
    this(delegate, null);
  }

  private CountingRuntime(ModelRuntime delegate, KvCacheStorage ownedKv) {
    this.delegate = delegate;
    this.ownedKv = ownedKv;
  }

  /** The TEST bundle's real runtime (CPU, 2 threads) over a KV cache of its own (8 blocks of 16), both closed by {@link #close}. */
  public static CountingRuntime overTestBundle() {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    KvCacheStorage kv = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 8));
    return new CountingRuntime(OnnxModelRuntime.open(bundle, new RuntimeOptions(RuntimeOptions.ExecutionProvider.CPU, 0, 2, false, true), kv), kv);
  }

  /** The view counts of the {@code encodeViews} calls so far, in order. */
  public List<Integer> encodeCalls() {
    return List.copyOf(numViewsPerCall);
  }

  /** Runs {@code hook} with the call's view count before each {@code encodeViews} delegates. */
  public void beforeEncode(IntConsumer hook) {
    this.beforeEncode = hook;
  }

  /** Runs {@code hook} on the engine thread before each {@code step} delegates. */
  public void beforeStep(Runnable hook) {
    this.beforeStep = hook;
  }

  /** Passes every logits row the real runtime returns through {@code rewriter}; null: rows as they are. */
  public void rewriteRows(RowRewriter rewriter) {
    this.rowRewriter = rewriter;
  }

  @Override
  public ModelSpec spec() {
    return delegate.spec();
  }

  @Override
  public TextTokenizer tokenizer() {
    return delegate.tokenizer();
  }

  @Override
  public float[] encodeViews(float[] pixels, int numViews) {
    numViewsPerCall.add(numViews);
    beforeEncode.accept(numViews);
    return delegate.encodeViews(pixels, numViews);
  }

  @Override
  public StepOutput step(List<SequenceStep> batch) {
    beforeStep.run();
    StepOutput output = delegate.step(batch);
    RowRewriter rewriter = rowRewriter;
    if (rewriter == null) return output;
    List<SequenceStep> withLogits = batch.stream().filter(SequenceStep::wantLogits).toList();
    return new StepOutput() {
      @Override
      public int numRows() {
        return output.numRows();
      }

      @Override
      public int vocabSize() {
        return output.vocabSize();
      }

      @Override
      public void copyRow(int row, float[] dst) {
        output.copyRow(row, dst);
        rewriter.rewrite(withLogits.get(row), dst);
      }

      @Override
      public float logit(int row, int tokenId) {
        float[] logits = new float[output.vocabSize()];
        copyRow(row, logits);
        return logits[tokenId];
      }
    };
  }

  @Override
  public void close() {
    delegate.close();
    if (ownedKv != null) ownedKv.close();
  }
}
