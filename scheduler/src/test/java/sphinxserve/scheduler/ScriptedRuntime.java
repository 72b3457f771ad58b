package sphinxserve.scheduler;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import sphinxserve.api.ChatTemplate;
import sphinxserve.api.ModelRuntime;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.SpecialTokens;
import sphinxserve.api.StepOutput;
import sphinxserve.api.TextTokenizer;
import sphinxserve.api.VisionSpec;

/**
 * The one fake DESIGN.md allows: a scripted {@link ModelRuntime} for scheduler unit tests. Its "model" picks
 * the next token as a fixed function of the chunk's last token and position, with a sharp peak in the logits,
 * so greedy output is deterministic and independent of batching; every step's batch is recorded and checked
 * against the KV contract (block tables cover the chunk).
 */
final class ScriptedRuntime implements ModelRuntime {

  static final int VOCAB = 64;
  static final int EOS = 2;
  static final int BLOCK_SIZE = 4;

  private final ModelSpec spec;
  private final List<List<SequenceStep>> batches = new ArrayList<>();
  private volatile Consumer<List<SequenceStep>> beforeStep = b -> {};
  private volatile java.util.function.BiConsumer<SequenceStep, float[]> rowHook = (step, row) -> {};
  private volatile int tokenizerVocab = VOCAB;
  private volatile int poisonId = -1;

  ScriptedRuntime(int maxContextTokens) {
    this.spec = new ModelSpec("scripted", "scripted", VOCAB, 8, 1, 1, 1, 8, maxContextTokens,
        new VisionSpec(4, 1, 4, 1, new int[] {0, 0, 0}, new float[] {0, 0, 0}, new float[] {1, 1, 1}),
        new ChatTemplate("", "", "", ""), new SpecialTokens(1, EOS, 3, 4), List.of());
  }

  /** The token the script answers after {@code lastToken} at {@code position}: never a special id. */
  static int next(int lastToken, int position) {
    return 5 + Math.floorMod(lastToken * 31 + position * 7, VOCAB - 5);
  }

  void beforeStep(Consumer<List<SequenceStep>> hook) {
    this.beforeStep = hook;
  }

  /** Runs {@code hook} on every logits row the step returns, with its sequence step (to corrupt a row). */
  void onRow(java.util.function.BiConsumer<SequenceStep, float[]> hook) {
    this.rowHook = hook;
  }

  /** Makes the tokenizer know only ids below {@code size}, as when a model pads its vocabulary. */
  void tokenizerVocab(int size) {
    this.tokenizerVocab = size;
  }

  /** Makes the tokenizer throw when asked for the bytes of {@code id}. */
  void poisonToken(int id) {
    this.poisonId = id;
  }

  synchronized List<List<SequenceStep>> batches() {
    return List.copyOf(batches);
  }

  @Override
  public ModelSpec spec() {
    return spec;
  }

  @Override
  public TextTokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public float[] encodeViews(float[] pixels, int numViews) {
    throw new UnsupportedOperationException("the scheduler never encodes images");
  }

  @Override
  public StepOutput step(List<SequenceStep> batch) {
    beforeStep.accept(batch);
    synchronized (this) {
      batches.add(List.copyOf(batch));
    }
    List<float[]> rows = new ArrayList<>();
    for (SequenceStep step : batch) {
      int needed = (step.endPosition() + BLOCK_SIZE - 1) / BLOCK_SIZE;
      if (step.blockTable().length < needed) throw new AssertionError("block table too short for " + step);
      if (!step.wantLogits()) continue;
      float[] logits = new float[VOCAB];
      int last = step.tokenIds()[step.numTokens() - 1];
      for (int v = 0; v < VOCAB; v++) logits[v] = (float) Math.sin(v * 0.37 + last);
      logits[next(last, step.endPosition() - 1)] = 10f;
      rowHook.accept(step, logits);
      rows.add(logits);
    }
    return new StepOutput() {
      @Override
      public int numRows() {
        return rows.size();
      }

      @Override
      public int vocabSize() {
        return VOCAB;
      }

      @Override
      public void copyRow(int row, float[] dst) {
        System.arraycopy(rows.get(row), 0, dst, 0, VOCAB);
      }

      @Override
      public float logit(int row, int tokenId) {
        return rows.get(row)[tokenId];
      }
    };
  }

  @Override
  public void close() {}

  /** Token id t reads as "t " (special ids read as nothing). */
  private final TextTokenizer tokenizer = new TextTokenizer() {
    @Override
    public int[] encode(String text) {
      throw new UnsupportedOperationException();
    }

    @Override
    public byte[] tokenBytes(int id) {
      if (id >= tokenizerVocab) throw new ArrayIndexOutOfBoundsException("no token " + id);
      if (id == poisonId) throw new IllegalStateException("poisoned token " + id);
      return id < 5 ? new byte[0] : (id + " ").getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public String decode(int[] ids) {
      StringBuilder out = new StringBuilder();
      for (int id : ids) out.append(new String(tokenBytes(id), StandardCharsets.UTF_8));
      return out.toString();
    }

    @Override
    public int vocabSize() {
      return tokenizerVocab;
    }
  };
}
