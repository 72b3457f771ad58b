package sphinxserve.scheduler;

import java.util.Arrays;
import java.util.List;
import sphinxserve.api.EngineRequest;
import sphinxserve.kvcache.PrefixKey;

/**
 * One request's mutable state inside the scheduler. Confined to the engine thread.
 *
 * <p>No phases: the request has {@code numTokens} known tokens (prompt, then generated) of which
 * {@code numComputed} have their K/V in the cache. Scheduling closes the gap by chunks; a decode is the
 * case {@code numTokens − numComputed == 1}; preemption frees the blocks and resets {@code numComputed} to 0
 * (the generated tokens stay, and are recomputed on resumption).
 */
final class Request {

  final EngineRequest request;
  final long seqId;
  final long arrivalOrder;
  final long arrivalNanos;
  final int numPromptTokens;
  final PrefixKey prefixKey;
  final SamplingState sampling;
  final IncrementalDetokenizer detokenizer;
  final StopStringMatcher stops;

  int[] tokens;
  int numTokens;
  int numComputed;
  /** Order of the latest admission; later admissions are preempted first. */
  long admittedOrder = -1;
  long firstAdmittedNanos = -1;
  long firstTokenNanos = -1;
  int numCachedPromptTokens;
  int numPreemptions;
  boolean finished;

  Request(EngineRequest request, long seqId, long arrivalOrder, long arrivalNanos, PrefixKey prefixKey,
      SamplingState sampling, IncrementalDetokenizer detokenizer, List<String> stopStrings) {
    this.request = request;
    this.seqId = seqId;
    this.arrivalOrder = arrivalOrder;
    this.arrivalNanos = arrivalNanos;
    this.numPromptTokens = request.promptTokenIds().length;
    this.prefixKey = prefixKey;
    this.sampling = sampling;
    this.detokenizer = detokenizer;
    this.stops = new StopStringMatcher(stopStrings);
    int capacity = numPromptTokens + Math.min(request.sampling().maxTokens(), 256);
    this.tokens = Arrays.copyOf(request.promptTokenIds(), capacity);
    this.numTokens = numPromptTokens;
  }

  String id() {
    return request.requestId();
  }

  int numGenerated() {
    return numTokens - numPromptTokens;
  }

  /** Tokens known but not yet computed. */
  int numUncomputed() {
    return numTokens - numComputed;
  }

  void appendToken(int tokenId) {
    if (numTokens == tokens.length) tokens = Arrays.copyOf(tokens, tokens.length * 2);
    tokens[numTokens++] = tokenId;
  }

  /** Priority after aging: one level per {@code agingSeconds} waited since arrival. */
  double effectivePriority(long nowNanos, double agingSeconds) {
    return request.priority() + (nowNanos - arrivalNanos) / 1e9 / agingSeconds;
  }
}
