package sphinxserve.server.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.TokenLogprobs;
import dev.sphinxserve.proto.v1.Usage;
import java.util.List;

/**
 * The transport's view of OpenAI's request and response shapes, per choice: what {@link HttpSink} needs from
 * {@link OpenAiRequests.Parsed} (the choices' requests) and from {@link OpenAiResponses} (a chunk of one choice, the
 * usage chunk, the whole body of every choice). The one place that knows how many choices a request has; today's
 * requests have one.
 */
final class ChoiceFormat {

  /**
   * One choice's whole answer, for the non-streamed body.
   *
   * @param index the choice's index
   * @param text everything it generated
   * @param logprobs its log-probabilities, when asked for
   * @param finish why it ended (STOP or LENGTH)
   * @param usage its token counts
   */
  record ChoiceResult(int index, String text, List<TokenLogprobs> logprobs, FinishReason finish, Usage usage) {}

  private final OpenAiResponses responses;

  ChoiceFormat(OpenAiResponses responses) {
    this.responses = responses;
  }

  /** The request of each choice, in index order. */
  static List<GenerateRequest> choiceRequests(OpenAiRequests.Parsed parsed) {
    return List.of(parsed.request());
  }

  /** A streamed chunk of choice {@code index} ({@code firstOfChoice}: its first, which carries the role). */
  ObjectNode chunk(int index, GenerateResponse r, boolean firstOfChoice) {
    return responses.chunk(r, firstOfChoice);
  }

  /** The usage chunk after every choice ended; {@code usages} in index order. */
  ObjectNode usageChunk(List<Usage> usages) {
    return responses.usageChunk(usages.getFirst());
  }

  /** The whole body once every choice ended; {@code choices} in index order. */
  ObjectNode complete(List<ChoiceResult> choices) {
    ChoiceResult only = choices.getFirst();
    return responses.complete(only.text(), only.finish(), only.usage(), only.logprobs());
  }
}
