package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The step-cost estimates behind the latency target's prefill budget. */
class StepCostModelTest {

  private static final long MS = 1_000_000L;

  @Test
  void unknownPrefillCost_probesWithASmallChunk() {
    StepCostModel costs = new StepCostModel();
    assertEquals(StepCostModel.PROBE_TOKENS, costs.prefillBudget(100 * MS, 16, 512));
    assertEquals(40, costs.prefillBudget(100 * MS, 16, 40), "never above the cap");
    costs.observe(1, 0, 10 * MS); // decode-only steps teach nothing about prefill
    assertEquals(StepCostModel.PROBE_TOKENS, costs.prefillBudget(100 * MS, 16, 512));
  }

  @Test
  void budget_isWhatTheTargetLeavesAfterTheDecodes() {
    StepCostModel costs = new StepCostModel();
    costs.observe(1, 0, 10 * MS);
    costs.observe(1, 200, 10 * MS + 200 * MS / 2); // 0.5 ms per prefill token beside a 10 ms decode step
    assertEquals(10 * MS, costs.decodeStepNanos(), 1);
    assertEquals(MS / 2, costs.prefillTokenNanos(), 1);
    assertEquals(180, costs.prefillBudget(100 * MS, 16, 512)); // (100 − 10) / 0.5
    assertEquals(16, costs.prefillBudget(5 * MS, 16, 512), "the floor when the decodes alone exceed the target");
    assertEquals(120, costs.prefillBudget(1000 * MS, 16, 120), "the cap when the target is loose");
  }

  @Test
  void relativeTarget_leavesPrefillTheStretchOfTheDecodeStep() {
    StepCostModel costs = new StepCostModel();
    ItlTarget target = ItlTarget.relative(1.25);
    costs.observe(0, 400, 200 * MS); // a prefill-only step: 0.5 ms per token, no decode step measured yet
    assertEquals(StepCostModel.PROBE_TOKENS, costs.prefillBudget(target.nanos(costs.decodeStepNanos()), 16, 512),
        "no decode step measured: no target known yet, so a probe");
    costs.observe(1, 0, 40 * MS);
    // 1.25 × 40 ms leaves 10 ms beside the decodes: 20 tokens at 0.5 ms.
    assertEquals(20, costs.prefillBudget(target.nanos(costs.decodeStepNanos()), 16, 512));
    costs.observe(2, 0, 40 * MS + 2 * (120 * MS - 40 * MS)); // the batch grew: the decode step average follows
    assertTrue(costs.prefillBudget(target.nanos(costs.decodeStepNanos()), 16, 512) > 20, "a longer step leaves more room");
  }

  @Test
  void relativeTarget_asksForADecodeOnlySampleWhenNoneIsFresh() {
    StepCostModel costs = new StepCostModel();
    assertTrue(costs.wantsDecodeOnlySample(), "never measured: a node that starts under a stream of prompts");
    costs.observe(1, 0, 10 * MS);
    assertTrue(!costs.wantsDecodeOnlySample());
    for (int i = 0; i < StepCostModel.MAX_MIXED_STEPS_PER_SAMPLE - 1; i++) costs.observe(3, 64, 30 * MS);
    assertTrue(!costs.wantsDecodeOnlySample());
    costs.observe(3, 64, 30 * MS);
    assertTrue(costs.wantsDecodeOnlySample(), "stale after a run of mixed steps: the batch may have grown");
    costs.observe(0, 512, 300 * MS);
    assertTrue(costs.wantsDecodeOnlySample(), "prefill-only steps say nothing about decodes");
    costs.observe(3, 0, 12 * MS);
    assertTrue(!costs.wantsDecodeOnlySample());
  }

  @Test
  void itlTargets_refuseNonsense() {
    assertEquals(Double.POSITIVE_INFINITY, ItlTarget.OFF.nanos(10 * MS));
    assertEquals(30 * MS, ItlTarget.millis(30).nanos(Double.NaN), 1);
    assertTrue(Double.isNaN(ItlTarget.relative(1.5).nanos(Double.NaN)));
    assertThrows(IllegalArgumentException.class, () -> ItlTarget.millis(0));
    assertThrows(IllegalArgumentException.class, () -> ItlTarget.relative(1.0));
    assertThrows(IllegalArgumentException.class, () -> ItlTarget.relative(Double.NaN));
  }

  @Test
  void prefillOnlySteps_countTheirWholeTime() {
    StepCostModel costs = new StepCostModel();
    costs.observe(0, 400, 400 * MS);
    assertEquals(MS, costs.prefillTokenNanos(), 1);
    costs.observe(1, StepCostModel.MIN_PREFILL_SAMPLE - 1, 999 * MS); // too few prefill tokens to say anything
    assertEquals(MS, costs.prefillTokenNanos(), 1);
  }

  @Test
  void overshoot_keepsTheBudgetOffTheTargetAndFades() {
    StepCostModel costs = new StepCostModel();
    costs.observe(1, 0, 10 * MS);
    costs.observe(1, 100, 10 * MS + 50 * MS); // 0.5 ms a token
    costs.observe(1, 100, 10 * MS + 50 * MS + 20 * MS); // 20 ms more than predicted
    assertEquals(20 * MS, costs.overshootNanos(), 1);
    int spiked = costs.prefillBudget(100 * MS, 16, 512);
    assertTrue(spiked < (100 - 10 - 20) * 2, "the budget leaves room for the overshoot, got " + spiked);
    for (int i = 0; i < 40; i++) costs.observe(1, 100, (long) (10 * MS + 100 * costs.prefillTokenNanos()));
    assertTrue(costs.overshootNanos() < MS, "steps as predicted: the overshoot fades, left " + costs.overshootNanos());
    assertTrue(costs.prefillBudget(100 * MS, 16, 512) > spiked, "and the budget grows back");
  }

  @Test
  void estimates_followTheMachineGettingSlower() {
    StepCostModel costs = new StepCostModel();
    costs.observe(1, 0, 10 * MS);
    for (int i = 0; i < 5; i++) costs.observe(1, 100, 10 * MS + 100 * MS / 2);
    int before = costs.prefillBudget(100 * MS, 16, 512);
    for (int i = 0; i < 12; i++) costs.observe(1, 100, 10 * MS + 100 * MS); // each prefill token now 1 ms
    assertEquals(180, before);
    assertEquals(MS, costs.prefillTokenNanos(), 0.05 * MS, "the per-token estimate follows");
    int during = costs.prefillBudget(100 * MS, 16, 512);
    assertTrue(during < 90, "while the steps overran, more than the new cost alone asks, got " + during);
    for (int i = 0; i < 40; i++) costs.observe(1, 100, 10 * MS + 100 * MS);
    int settled = costs.prefillBudget(100 * MS, 16, 512);
    assertTrue(settled >= 88 && settled <= 90, "settled: (100 − 10) / 1 ms, got " + settled);
  }
}
