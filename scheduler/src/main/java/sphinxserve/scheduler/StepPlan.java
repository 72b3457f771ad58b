package sphinxserve.scheduler;

import java.util.List;
import sphinxserve.api.SequenceStep;

/**
 * One step's decisions, immutable once built: the requests scheduled, in the runtime batch's order, the
 * chunk each computes, and whether each samples a token afterwards (the logits rows follow that order).
 * {@code numDecodes} of the requests compute one token each (scheduled first); the other tokens are prefill.
 */
record StepPlan(List<Request> requests, List<SequenceStep> steps, int numScheduledTokens, int numDecodes, int numPreempted) {

  boolean isEmpty() {
    return requests.isEmpty();
  }

  /** What the runtime computes for the prefill chunks, which it runs together padded to the longest. */
  int numPaddedPrefillTokens() {
    int longest = 0;
    for (int i = numDecodes; i < steps.size(); i++) longest = Math.max(longest, steps.get(i).numTokens());
    return (steps.size() - numDecodes) * longest;
  }
}
