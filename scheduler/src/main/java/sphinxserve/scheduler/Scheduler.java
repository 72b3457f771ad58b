package sphinxserve.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import sphinxserve.api.FinishReason;
import sphinxserve.api.ImageEmbeddings;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.api.TokenLogprob;
import sphinxserve.api.Usage;
import sphinxserve.kvcache.AllocationResult;
import sphinxserve.kvcache.ComputedPrefix;
import sphinxserve.kvcache.KvCacheManager;

/**
 * Iteration-level scheduling (Orca) over a paged KV cache (vLLM): decides every step which requests run and
 * how many tokens each computes, and applies the step's logits. Confined to the engine thread.
 *
 * <p>One step, under a token budget of {@code maxNumBatchedTokens} and at most {@code maxNumSeqs} sequences:
 * <ol>
 *   <li><b>Decodes first</b>: every running request with one uncomputed token gets a slot, in order of
 *       effective priority then admission. When the pool is out of blocks, the <b>victim</b> is the running
 *       request with the lowest effective priority, most recently admitted, not yet scheduled this step
 *       (possibly the requester itself): its blocks are freed, its computed count reset to 0, and it goes
 *       back to the waiting queue keeping its generated tokens and its arrival order (recompute preemption).
 *   <li><b>Then running prefills</b>: a chunk of what the budget and the free blocks allow. With a latency
 *       target ({@link ItlTarget}) and decodes in the step, the prefill chunks also share what the target
 *       leaves after the decodes by the measured step costs ({@link StepCostModel}), at least a block, counted
 *       as the runtime computes them: chunks × the longest ({@link PrefillRoom}).
 *   <li><b>Then admissions</b> (only in steps without preemption): the waiting request of highest effective
 *       priority, earliest arrival first, gets its cached prefix (image positions included) and a first chunk;
 *       the first request that does not fit stops admission (no overtaking, hence no starvation by smaller
 *       requests), as does the free-block watermark.
 * </ol>
 * A long prompt therefore never stalls decodes: they are scheduled before any prefill chunk, and with a latency
 * target the chunks beside them are no longer than the target allows.
 *
 * <p><b>No starvation.</b> Effective priority = priority + seconds waited / {@code priorityAgingSeconds}.
 * A request that has waited long enough outranks any newer arrival, so it is the next admitted once blocks
 * allow; once running, it is preempted only after every running request of lower effective priority, and
 * aging keeps raising it while it waits again. Preempted requests keep their arrival order, so they re-enter
 * ahead of later arrivals of the same priority.
 *
 * <p>Preemption is invisible in the output: a resumed request recomputes the K/V of its prompt and generated
 * tokens (often from the prefix cache), and its sampler state (penalty counts, random stream) is untouched, so
 * its tokens equal an uninterrupted run's.
 */
final class Scheduler {

  private final KvCacheManager kv;
  private final EngineConfig config;
  private final ParallelSampler sampler;
  private final EngineStats stats;
  private final int maxContextTokens;
  private final int watermarkBlocks;
  private final Runnable onLeftQueue;

  private final List<Request> waiting = new ArrayList<>();
  private final List<Request> running = new ArrayList<>();
  private final StepCostModel costs = new StepCostModel();
  private long admissionCounter;

  /**
   * @param onLeftQueue called once per request when it first leaves the waiting queue (first admission, or
   *     finishing before it), so the engine's bound on waiting requests counts accepted, never-admitted ones
   */
  Scheduler(KvCacheManager kv, EngineConfig config, ParallelSampler sampler, int maxContextTokens, EngineStats stats, Runnable onLeftQueue) {
    this.kv = kv;
    this.onLeftQueue = onLeftQueue;
    this.config = config;
    this.sampler = sampler;
    this.maxContextTokens = maxContextTokens;
    this.stats = stats;
    this.watermarkBlocks = (int) Math.ceil(config.admissionWatermark() * kv.numBlocks());
  }

  void add(Request request) {
    waiting.add(request);
    publishCounts();
  }

  boolean hasWork() {
    return !waiting.isEmpty() || !running.isEmpty();
  }

  int numWaiting() {
    return waiting.size();
  }

  int numRunning() {
    return running.size();
  }

  // ---- planning ------------------------------------------------------------------------------------

  StepPlan schedule(long nowNanos) {
    int budget = config.maxNumBatchedTokens();
    // Insertion order is the batch order: decodes, running prefills, admissions. (Requests compare by identity.)
    Map<Request, Integer> scheduled = new LinkedHashMap<>();
    List<Request> order = new ArrayList<>(running);
    order.sort(byPriorityThenAdmission(nowNanos));
    int numPreempted = 0;

    for (Request r : order) { // 1. decodes
      if (budget == 0) break;
      if (r.numUncomputed() != 1 || !running.contains(r)) continue;
      while (true) {
        if (kv.allocateSlots(r.seqId, 1) instanceof AllocationResult.Allocated) {
          scheduled.put(r, 1);
          budget--;
          break;
        }
        Request victim = victim(order, scheduled, r);
        preempt(victim == null ? r : victim);
        numPreempted++;
        if (victim == null) break;
      }
    }
    int numDecodes = scheduled.size();
    PrefillRoom room = prefillRoom(numDecodes, budget);
    for (Request r : order) { // 2. running prefills
      if (room.isFull()) break;
      if (r.numUncomputed() <= 1 || scheduled.containsKey(r) || !running.contains(r)) continue;
      int chunk = allocateRunningChunk(r, room.nextChunk(r.numUncomputed()));
      if (chunk > 0) {
        scheduled.put(r, chunk);
        room.take(chunk);
      }
    }
    if (numPreempted == 0) { // 3. admissions
      while (!room.isFull() && running.size() < config.maxNumSeqs() && !waiting.isEmpty()) {
        Request r = bestWaiting(nowNanos);
        int chunk = admit(r, room.nextChunk(Integer.MAX_VALUE), nowNanos);
        if (chunk == 0) break;
        scheduled.put(r, chunk);
        room.take(chunk);
      }
    }
    publishCounts();
    return plan(scheduled, numDecodes, numPreempted);
  }

  /**
   * The room prefill chunks have this step: what the token budget leaves after the decodes and, when a latency
   * target is set and streams are decoding (without decodes nobody waits on the step), the padded tokens the
   * target leaves by the measured step costs.
   */
  private PrefillRoom prefillRoom(int numDecodes, int remaining) {
    if (config.itlTarget() instanceof ItlTarget.Off || numDecodes == 0 || remaining == 0) return PrefillRoom.ofTokens(remaining);
    // A relative target scales the decode-only step: measure one now and then, or it is never (re)measured.
    if (config.itlTarget() instanceof ItlTarget.Relative && costs.wantsDecodeOnlySample()) return PrefillRoom.ofTokens(0);
    return PrefillRoom.ofTokensAndPadded(remaining,
        costs.prefillBudget(config.itlTarget().nanos(costs.decodeStepNanos()), kv.blockSize(), remaining));
  }

  /** Records what a planned step took, from planning to its tokens delivered, for the latency target's budget. */
  void observeStep(StepPlan plan, long stepNanos) {
    costs.observe(plan.numDecodes(), plan.numPaddedPrefillTokens(), stepNanos);
  }

  /** Admits {@code r} with its cached prefix and a first chunk of at most {@code budget}; 0 if it does not fit. */
  private int admit(Request r, int budget, long nowNanos) {
    ComputedPrefix prefix = kv.computedPrefix(r.prefixKey, r.tokens, r.numTokens);
    int chunk = Math.min(r.numTokens - prefix.numTokens(), budget);
    int free = reclaimableBlocks();
    int blocksNeeded = kv.blocksFor(prefix.numTokens() + chunk) - prefix.numBlocks();
    int watermark = running.isEmpty() ? 0 : watermarkBlocks; // alone, a request may use every block
    if (free - blocksNeeded < watermark) {
      // Shrink the first chunk to what leaves the watermark free; a chunk under one block is not worth it.
      int affordable = (free - watermark) * kv.blockSize();
      chunk = Math.min(chunk, affordable);
      if (chunk <= 0 || (chunk < kv.blockSize() && chunk < r.numTokens - prefix.numTokens())) return 0;
    }
    if (!(kv.allocateSlots(r.seqId, r.prefixKey, prefix, chunk) instanceof AllocationResult.Allocated)) return 0;
    waiting.remove(r);
    running.add(r);
    r.numComputed = prefix.numTokens();
    r.admittedOrder = admissionCounter++;
    if (r.firstAdmittedNanos < 0) {
      r.firstAdmittedNanos = nowNanos;
      onLeftQueue.run();
      r.numCachedPromptTokens = Math.min(prefix.numTokens(), r.numPromptTokens);
      notify(r, true);
    }
    return chunk;
  }

  /** Allocates up to {@code wanted} more slots for running {@code r}, fewer if blocks are short; returns how many. */
  private int allocateRunningChunk(Request r, int wanted) {
    if (kv.allocateSlots(r.seqId, wanted) instanceof AllocationResult.Allocated) return wanted;
    int held = kv.blockTable(r.seqId).length * kv.blockSize() - kv.numSlots(r.seqId);
    int available = reclaimableBlocks();
    for (int copy = 0; copy <= 1; copy++) { // a shared last block costs one copy
      int fits = Math.min(wanted, held + (available - copy) * kv.blockSize());
      if (fits > 0 && kv.allocateSlots(r.seqId, fits) instanceof AllocationResult.Allocated) return fits;
    }
    return 0;
  }

  /** The lowest-priority, most recently admitted running request not yet scheduled, other than {@code r}. */
  private Request victim(List<Request> order, Map<Request, Integer> scheduled, Request r) {
    for (int i = order.size() - 1; i >= 0; i--) {
      Request candidate = order.get(i);
      if (candidate != r && !scheduled.containsKey(candidate) && running.contains(candidate)) return candidate;
    }
    return null;
  }

  private void preempt(Request r) {
    kv.free(r.seqId);
    running.remove(r);
    r.numComputed = 0;
    r.numPreemptions++;
    waiting.add(r);
    stats.recordPreemption();
    notify(r, false);
  }

  /** Calls the request's {@code onScheduled} or {@code onPreempted} hook; a failing hook changes nothing. */
  private static void notify(Request r, boolean scheduled) {
    try {
      if (scheduled) r.request.sink().onScheduled();
      else r.request.sink().onPreempted();
    } catch (RuntimeException ignored) {
      // Hooks observe; they never decide a request's fate.
    }
  }

  private Request bestWaiting(long nowNanos) {
    Request best = waiting.get(0);
    for (Request r : waiting) {
      double p = r.effectivePriority(nowNanos, config.priorityAgingSeconds());
      double bestP = best.effectivePriority(nowNanos, config.priorityAgingSeconds());
      if (p > bestP || (p == bestP && r.arrivalOrder < best.arrivalOrder)) best = r;
    }
    return best;
  }

  private Comparator<Request> byPriorityThenAdmission(long nowNanos) {
    return Comparator.comparingDouble((Request r) -> -r.effectivePriority(nowNanos, config.priorityAgingSeconds()))
        .thenComparingLong(r -> r.admittedOrder);
  }

  /** The plan for {@code scheduled}: a scheduled request is never preempted later in the same step. */
  private StepPlan plan(Map<Request, Integer> scheduled, int numDecodes, int numPreempted) {
    List<Request> requests = new ArrayList<>(scheduled.size());
    List<SequenceStep> steps = new ArrayList<>(scheduled.size());
    int numTokens = 0;
    for (int chunk : scheduled.values()) numTokens += chunk;
    scheduled.forEach((r, chunk) -> {
      int start = r.numComputed;
      ImageEmbeddings image = r.request.image();
      steps.add(new SequenceStep(Arrays.copyOfRange(r.tokens, start, start + chunk), start, kv.blockTable(r.seqId),
          image, r.request.imageStart(), start + chunk == r.numTokens));
      requests.add(r);
    });
    return new StepPlan(List.copyOf(requests), List.copyOf(steps), numTokens, numDecodes, numPreempted);
  }


  // ---- applying a step's result ------------------------------------------------------------------------

  /**
   * Records the plan's computed tokens, samples where logits came back, emits output, finishes requests. What
   * fails for one request (its row's logits unusable, its detokenising, its output) ends that request with
   * ERROR; the others carry on.
   */
  void apply(StepPlan plan, StepOutput output, long nowNanos) {
    List<Request> sampled = new ArrayList<>();
    List<SamplingState> states = new ArrayList<>();
    for (int i = 0; i < plan.requests().size(); i++) {
      Request r = plan.requests().get(i);
      SequenceStep step = plan.steps().get(i);
      if (step.wantLogits()) { // its logits row exists whatever happened to the request meanwhile
        sampled.add(r);
        states.add(r.sampling);
      }
      if (r.finished || !running.contains(r)) continue; // aborted while the step ran
      r.numComputed = step.endPosition();
      kv.markComputed(r.seqId, r.tokens, r.numComputed);
    }
    ParallelSampler.Rows rows = sampler.sampleAll(output, states);
    for (int i = 0; i < sampled.size(); i++) {
      Request r = sampled.get(i);
      if (r.finished || !running.contains(r)) continue;
      if (rows.error(i) != null) {
        fail(r, "sampling failed", rows.error(i), nowNanos);
        continue;
      }
      try {
        accept(r, rows.token(i), nowNanos);
      } catch (RuntimeException e) {
        fail(r, "handling the sampled token failed", e, nowNanos);
      }
    }
    publishCounts();
  }

  /** Appends a sampled token to {@code r} and emits what it adds to the answer. */
  private void accept(Request r, SampledToken token, long nowNanos) {
    r.sampling.append(token.tokenId());
    r.appendToken(token.tokenId());
    if (r.firstTokenNanos < 0) r.firstTokenNanos = nowNanos;
    stats.recordGeneratedToken();
    emit(r, token, nowNanos);
  }

  private void emit(Request r, SampledToken token, long nowNanos) {
    boolean stopToken = r.sampling.isStopToken(token.tokenId());
    StopStringMatcher.Result text = stopToken ? null : matchStops(r, r.detokenizer.push(token.tokenId()));
    FinishReason reason = null;
    if (stopToken || text.stopped()) {
      reason = FinishReason.STOP;
    } else if (r.numGenerated() >= r.request.sampling().maxTokens() || r.numTokens >= maxContextTokens) {
      reason = FinishReason.LENGTH;
    }
    String out = text == null ? "" : text.text();
    // Ending on EOS or length, text held back as a possible stop-string start or half a character is real
    // output: release it. A matched stop string discards everything from the stop on.
    if (reason == FinishReason.LENGTH || stopToken) out += flush(r);
    List<TokenLogprob> logprobs = r.request.sampling().logprobs() > 0
        ? List.of(new TokenLogprob(token.tokenId(), token.logprob(), token.topTokenIds(), token.topLogprobs()))
        : List.of();
    if (!deliver(r, out, new int[] {token.tokenId()}, logprobs)) return;
    if (reason != null) finish(r, reason, null, nowNanos);
  }

  /**
   * Runs {@code piece} through {@code r}'s stop strings, except within its first {@code min_tokens} tokens, whose
   * text is passed on as it is and never searched (as vLLM: no stop before {@code min_tokens}; a stop string
   * that begins in that text is not matched either).
   */
  private static StopStringMatcher.Result matchStops(Request r, String piece) {
    if (r.numGenerated() <= r.request.sampling().minTokens()) return StopStringMatcher.Result.text(piece);
    return r.stops.push(piece);
  }

  /** Held-back text (an incomplete character, a partial stop string) released at the end of the answer. */
  private static String flush(Request r) {
    String tail = r.detokenizer.finish();
    StopStringMatcher.Result pushed = matchStops(r, tail);
    return pushed.text() + (pushed.stopped() ? "" : r.stops.finish().text());
  }

  private boolean deliver(Request r, String text, int[] tokenIds, List<TokenLogprob> logprobs) {
    try {
      r.request.sink().onTokens(text, tokenIds, logprobs);
      return true;
    } catch (RuntimeException e) {
      finish(r, FinishReason.ABORTED, "the output sink failed: " + e, System.nanoTime());
      return false;
    }
  }

  // ---- finishing ---------------------------------------------------------------------------------------

  /** Aborts request {@code requestId} if it is live; frees its blocks at once. */
  boolean abort(String requestId, FinishReason reason, String message, long nowNanos) {
    for (List<Request> list : List.of(running, waiting)) {
      for (Request r : list) {
        if (r.id().equals(requestId)) {
          finish(r, reason, message, nowNanos);
          return true;
        }
      }
    }
    return false;
  }

  /** Finishes every request whose deadline passed. */
  void expireDeadlines(long nowNanos) {
    for (List<Request> list : List.of(running, waiting)) {
      for (Request r : new ArrayList<>(list)) {
        if (nowNanos - r.request.deadlineNanos() > 0 && r.request.deadlineNanos() != Long.MAX_VALUE) {
          finish(r, FinishReason.DEADLINE, null, nowNanos);
        }
      }
    }
  }

  /** A failed step: its requests finish with ERROR (blocks freed); everything else carries on. */
  void failStep(StepPlan plan, RuntimeException error, long nowNanos) {
    for (Request r : plan.requests()) fail(r, "model step failed", error, nowNanos);
  }

  /**
   * Finishes every live request with {@code reason}. Every sink gets its {@code onFinish} even if freeing some
   * request's blocks throws; the first such failure is rethrown at the end.
   */
  void finishAll(FinishReason reason, String message, long nowNanos) {
    RuntimeException first = null;
    for (List<Request> list : List.of(running, waiting)) {
      for (Request r : new ArrayList<>(list)) {
        try {
          finish(r, reason, message, nowNanos);
        } catch (RuntimeException e) {
          if (first == null) first = e;
        }
      }
    }
    if (first != null) throw first;
  }

  /** Ends {@code r} with ERROR: one request's failure, which the others never see. */
  private void fail(Request r, String what, RuntimeException error, long nowNanos) {
    finish(r, FinishReason.ERROR, what + ": " + error, nowNanos);
  }

  /**
   * Ends {@code r}: frees its blocks and calls its sink's {@code onFinish} once. The sink hears of the end even
   * if freeing throws (the KV bookkeeping is then broken, and the exception goes on to the engine).
   */
  private void finish(Request r, FinishReason reason, String message, long nowNanos) {
    if (r.finished) return;
    r.finished = true;
    if (r.firstAdmittedNanos < 0) onLeftQueue.run();
    boolean wasRunning = running.remove(r);
    waiting.remove(r);
    try {
      if (wasRunning) kv.free(r.seqId);
    } finally {
      publishCounts();
      stats.recordFinished();
      double queue = r.firstAdmittedNanos < 0 ? (nowNanos - r.arrivalNanos) / 1e9 : (r.firstAdmittedNanos - r.arrivalNanos) / 1e9;
      double ttft = r.firstTokenNanos < 0 ? 0 : (r.firstTokenNanos - r.arrivalNanos) / 1e9;
      Usage usage = new Usage(r.numPromptTokens, r.numGenerated(), r.request.numImageTokens(), r.numCachedPromptTokens, queue, ttft, r.numPreemptions);
      try {
        r.request.sink().onFinish(reason, usage, message);
      } catch (RuntimeException ignored) {
        // The request is over either way; a failing sink must not take the engine down.
      }
    }
  }

  /** Blocks an allocation can take: free ones and cached ones nobody references. */
  private int reclaimableBlocks() {
    var stats = kv.stats();
    return stats.numFreeBlocks() + stats.numCachedBlocks();
  }

  private void publishCounts() {
    stats.publishCounts(running.size(), waiting.size(), kv.stats().usage());
  }
}
