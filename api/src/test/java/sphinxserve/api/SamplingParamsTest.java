package sphinxserve.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

class SamplingParamsTest {

  @Test
  void defaults_matchVllm() {
    SamplingParams p = SamplingParams.defaults();
    assertEquals(16, p.maxTokens());
    assertEquals(1f, p.temperature());
    assertEquals(1f, p.topP());
    assertEquals(0, p.topK());
    assertEquals(0f, p.minP());
    assertEquals(1f, p.repetitionPenalty());
    assertEquals(0f, p.presencePenalty());
    assertEquals(0f, p.frequencyPenalty());
    assertEquals(OptionalLong.empty(), p.seed());
    assertEquals(List.of(), p.stop());
    assertEquals(List.of(), p.stopTokenIds());
    assertFalse(p.ignoreEos());
    assertEquals(0, p.minTokens());
    assertEquals(0, p.logprobs());
    assertFalse(p.isGreedy());
    assertFalse(p.hasTopK());
    assertFalse(p.hasPenalties());
  }

  @Test
  void builder_roundTripsThroughToBuilder() {
    SamplingParams p = SamplingParams.builder().maxTokens(100).temperature(0).topP(0.9f).topK(50).minP(0.05f)
        .repetitionPenalty(1.1f).presencePenalty(0.5f).frequencyPenalty(-0.5f).seed(42).stop(List.of("\n###"))
        .stopTokenIds(List.of(7)).ignoreEos(true).minTokens(3).logprobs(5).build();
    assertEquals(p, p.toBuilder().build());
    assertTrue(p.isGreedy());
    assertTrue(p.hasTopK());
    assertTrue(p.hasPenalties());
    assertEquals(OptionalLong.of(42), p.seed());
  }

  @Test
  void build_invalidField_messageNamesField() {
    assertMessage("sampling.top_p must be in (0, 1]", SamplingParams.builder().topP(0));
    assertMessage("sampling.top_p must be in (0, 1]", SamplingParams.builder().topP(1.01f));
    assertMessage("sampling.top_p must be in (0, 1]", SamplingParams.builder().topP(Float.NaN));
    assertMessage("sampling.max_tokens", SamplingParams.builder().maxTokens(0));
    assertMessage("sampling.temperature", SamplingParams.builder().temperature(-0.1f));
    assertMessage("sampling.temperature", SamplingParams.builder().temperature(Float.POSITIVE_INFINITY));
    assertMessage("sampling.top_k", SamplingParams.builder().topK(-2));
    assertMessage("sampling.min_p", SamplingParams.builder().minP(1.5f));
    assertMessage("sampling.repetition_penalty", SamplingParams.builder().repetitionPenalty(0));
    assertMessage("sampling.presence_penalty", SamplingParams.builder().presencePenalty(2.5f));
    assertMessage("sampling.frequency_penalty", SamplingParams.builder().frequencyPenalty(-3));
    assertMessage("sampling.stop", SamplingParams.builder().stop(List.of("ok", "")));
    assertMessage("sampling.stop_token_ids", SamplingParams.builder().stopTokenIds(List.of(-1)));
    assertMessage("sampling.min_tokens", SamplingParams.builder().maxTokens(4).minTokens(5));
    assertMessage("sampling.logprobs", SamplingParams.builder().logprobs(SamplingParams.MAX_LOGPROBS + 1));
  }

  @Test
  void constraint_keptByBuilderAndRefusedWithIgnoreEos() {
    TokenConstraint anything = () -> { throw new UnsupportedOperationException("not matched in this test"); };
    SamplingParams p = SamplingParams.builder().constraint(anything).build();
    assertSame(anything, p.constraint());
    assertSame(anything, p.toBuilder().build().constraint());
    assertNull(SamplingParams.defaults().constraint());
    assertMessage("sampling.ignore_eos cannot be combined with a constraint",
        SamplingParams.builder().constraint(anything).ignoreEos(true));
  }

  @Test
  void topK_minusOneAndZero_areOff() {
    assertFalse(SamplingParams.builder().topK(-1).build().hasTopK());
    assertFalse(SamplingParams.builder().topK(0).build().hasTopK());
  }

  private static void assertMessage(String expectedStart, SamplingParams.Builder builder) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, builder::build);
    assertTrue(e.getMessage().startsWith(expectedStart), e.getMessage());
  }
}
