package sphinxserve.server.testing;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.IntConsumer;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.api.TextTokenizer;

/**
 * A decorator over a real {@link ModelRuntime} that records every {@link #encodeViews} call's view count and
 * can run a hook before delegating, and can run a hook before each {@link #step} (e.g. to stretch a
 * generation in time). Not a fake: every call reaches the real runtime.
 */
public final class CountingRuntime implements ModelRuntime {

  private final ModelRuntime delegate;
  private final List<Integer> numViewsPerCall = new CopyOnWriteArrayList<>();
  private volatile IntConsumer beforeEncode = numViews -> {};
  private volatile Runnable beforeStep = () -> {};

  public CountingRuntime(ModelRuntime delegate) {
    this.delegate = delegate;
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
    return delegate.step(batch);
  }

  @Override
  public void close() {
    delegate.close();
  }
}
