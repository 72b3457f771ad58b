package sphinxserve.client;

import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.ToolCall;
import java.util.List;
import dev.sphinxserve.proto.v1.Usage;
import java.util.Objects;
import sphinxserve.client.outputs.ParsedAnswer;
import sphinxserve.client.outputs.SphinxOutputs;

/**
 * A whole answer, assembled from the streamed deltas.
 *
 * @param requestId    the node's id for the request
 * @param text         the answer's text
 * @param finishReason why generation stopped ({@code FINISH_REASON_UNSPECIFIED} if the node did not say)
 * @param usage        token counts and timings from the last message (default instance if absent)
 * @param toolCalls    the tools the answer called (finish reason {@code TOOL_CALLS}), parsed by the node; empty
 *                     unless the request offered tools
 */
public record Answer(String requestId, String text, FinishReason finishReason, Usage usage, List<ToolCall> toolCalls) {
  /** Checks the components. */
  public Answer {
    Objects.requireNonNull(requestId, "requestId");
    Objects.requireNonNull(text, "text");
    Objects.requireNonNull(finishReason, "finishReason");
    Objects.requireNonNull(usage, "usage");
    toolCalls = List.copyOf(toolCalls);
  }

  /** An answer without tool calls. */
  public Answer(String requestId, String text, FinishReason finishReason, Usage usage) {
    this(requestId, text, finishReason, usage, List.of());
  }

  /** The regions and keypoints in the text. */
  public ParsedAnswer outputs() {
    return SphinxOutputs.parse(text);
  }
}
