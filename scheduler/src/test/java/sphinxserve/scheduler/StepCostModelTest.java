package sphinxserve.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
  void prefillOnlySteps_countTheirWholeTime() {
    StepCostModel costs = new StepCostModel();
    costs.observe(0, 400, 400 * MS);
    assertEquals(MS, costs.prefillTokenNanos(), 1);
    costs.observe(1, StepCostModel.MIN_PREFILL_SAMPLE - 1, 999 * MS); // too few prefill tokens to say anything
    assertEquals(MS, costs.prefillTokenNanos(), 1);
  }

  @Test
  void estimates_followTheMachineGettingSlower() {
    StepCostModel costs = new StepCostModel();
    costs.observe(1, 0, 10 * MS);
    for (int i = 0; i < 5; i++) costs.observe(1, 100, 10 * MS + 100 * MS / 2);
    int before = costs.prefillBudget(100 * MS, 16, 512);
    for (int i = 0; i < 12; i++) costs.observe(1, 100, 10 * MS + 100 * MS); // each prefill token now 1 ms
    int after = costs.prefillBudget(100 * MS, 16, 512);
    assertEquals(180, before);
    assertTrue(after < 100, "twice the per-token cost: the budget nearly halves, got " + after);
    assertTrue(after >= 90, "and no further than the new cost asks, got " + after);
  }
}
