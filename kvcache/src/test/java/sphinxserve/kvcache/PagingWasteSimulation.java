package sphinxserve.kvcache;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Memory efficiency of paging under a mixed workload, beside contiguous reservation: 1,000 sequences (prompts
 * 50–2,000 tokens, outputs 1–500) arrive over time, are admitted FIFO while blocks last, prefill in one step,
 * decode one token per step and free their blocks when done. Every step, paging's waste is the empty slots of
 * allocated blocks (from {@link KvCacheStats}); reservation's is the reserved slots holding no token, for the same
 * running set, reserving either the model's maximum length (2,500) or prompt + max output (500) per sequence.
 * Waste is summed over steps (time-weighted). Deterministic: seeded.
 *
 * <p>Run: {@code bin/bench-kvcache waste} (results in docs/PERFORMANCE.md).
 */
public final class PagingWasteSimulation {

  static final int NUM_SEQUENCES = 1000;
  static final int MIN_PROMPT = 50;
  static final int MAX_PROMPT = 2000;
  static final int MIN_OUTPUT = 1;
  static final int MAX_OUTPUT = 500;
  /** One arrival every this many steps on average. */
  static final double STEPS_PER_ARRIVAL = 2.0;
  static final int NUM_BLOCKS = 8192;
  static final long SEED = 20_240_601L;

  private PagingWasteSimulation() {}

  /** One simulated sequence. */
  private record Seq(long id, int promptTokens, int outputTokens, int arrivalStep) {}

  /** Prints the comparison table. */
  public static void main(String[] args) {
    int blockSize = args.length > 0 ? Integer.parseInt(args[0]) : KvCacheLayout.DEFAULT_BLOCK_SIZE;
    SplittableRandom random = new SplittableRandom(SEED);
    List<Seq> arrivals = new ArrayList<>();
    double t = 0;
    for (int i = 0; i < NUM_SEQUENCES; i++) {
      t += -Math.log(1 - random.nextDouble()) * STEPS_PER_ARRIVAL; // Poisson arrivals
      arrivals.add(new Seq(i + 1, random.nextInt(MIN_PROMPT, MAX_PROMPT + 1), random.nextInt(MIN_OUTPUT, MAX_OUTPUT + 1), (int) t));
    }
    try (KvCacheStorage storage = new KvCacheStorage(new KvCacheLayout(1, 1, 1, blockSize, NUM_BLOCKS))) {
      KvCacheManager manager = new KvCacheManager(storage, false);
      ArrayDeque<Seq> waiting = new ArrayDeque<>();
      List<Seq> running = new ArrayList<>();
      int[] generated = new int[NUM_SEQUENCES + 1];
      int next = 0;
      long pagedSlots = 0, pagedEmpty = 0, usedSlots = 0, reservedMax = 0, reservedPromptPlusMax = 0;
      long steps = 0, runningSum = 0, finished = 0;
      int peakRunning = 0;
      long numPreemptions = 0;
      for (int step = 0; finished < NUM_SEQUENCES; step++) {
        while (next < arrivals.size() && arrivals.get(next).arrivalStep() <= step) waiting.add(arrivals.get(next++));
        // Decode one token for every running sequence, admitted earlier. Out of blocks: preempt by recompute the
        // most recently admitted sequence (DESIGN.md): free it, requeue it at the front with its output so far.
        long preempted = 0;
        for (int i = 0; i < running.size(); i++) {
          Seq seq = running.get(i);
          if (generated[(int) seq.id()] == seq.outputTokens()) {
            manager.free(seq.id());
            running.remove(i--);
            finished++;
            continue;
          }
          boolean selfPreempted = false;
          while (!manager.allocateSlots(seq.id(), 1).ok()) {
            Seq victim = running.remove(running.size() - 1);
            manager.free(victim.id());
            int done = generated[(int) victim.id()];
            waiting.addFirst(new Seq(victim.id(), victim.promptTokens() + done, victim.outputTokens() - done, victim.arrivalStep()));
            preempted++;
            if (victim == seq) {
              selfPreempted = true;
              break;
            }
          }
          if (selfPreempted) break;
          generated[(int) seq.id()]++;
        }
        numPreemptions += preempted;
        // Admit FIFO while the prompt (and its first output token) fits.
        while (preempted == 0 && !waiting.isEmpty() && manager.allocateSlots(waiting.peek().id(), PrefixKey.of("sim"), ComputedPrefix.NONE, waiting.peek().promptTokens() + 1).ok()) {
          Seq seq = waiting.poll();
          generated[(int) seq.id()] = 1;
          running.add(seq);
        }
        KvCacheStats stats = manager.stats();
        pagedSlots += (long) stats.numInUseBlocks() * blockSize;
        pagedEmpty += stats.numEmptySlots();
        for (Seq seq : running) {
          long used = seq.promptTokens() + generated[(int) seq.id()];
          usedSlots += used;
          reservedMax += MAX_PROMPT + MAX_OUTPUT;
          reservedPromptPlusMax += seq.promptTokens() + MAX_OUTPUT;
        }
        steps++;
        runningSum += running.size();
        peakRunning = Math.max(peakRunning, running.size());
      }
      if (pagedSlots - pagedEmpty != usedSlots) throw new AssertionError("paging accounting: " + (pagedSlots - pagedEmpty) + " != " + usedSlots);
      System.out.printf("Workload: %d sequences, prompts %d-%d, outputs %d-%d, Poisson arrivals every %.1f steps, block size %d, %d blocks; %d steps, mean %.1f running, peak %d, %d preemptions%n",
          NUM_SEQUENCES, MIN_PROMPT, MAX_PROMPT, MIN_OUTPUT, MAX_OUTPUT, STEPS_PER_ARRIVAL, blockSize, NUM_BLOCKS, steps, (double) runningSum / steps, peakRunning, numPreemptions);
      System.out.printf("%-44s %16s %16s %8s%n", "scheme (same running set every step)", "slot-steps held", "slot-steps empty", "waste");
      row("paging (block " + blockSize + ")", pagedSlots, pagedEmpty);
      row("contiguous, prompt + max output (500)", reservedPromptPlusMax, reservedPromptPlusMax - usedSlots);
      row("contiguous, max length (2,500)", reservedMax, reservedMax - usedSlots);
    }
  }

  private static void row(String name, long held, long empty) {
    System.out.printf("%-44s %16d %16d %7.2f%%%n", name, held, empty, 100.0 * empty / held);
  }
}
