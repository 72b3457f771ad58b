package sphinxserve.server.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import java.util.List;

/**
 * The transport's view of OpenAI's request and response shapes, per choice: what {@link HttpSink} needs from
 * {@link OpenAiResponses}: a chunk of one choice, the usage chunk, the whole body of every choice.
 */
final class ChoiceFormat {

  private final OpenAiResponses responses;

  ChoiceFormat(OpenAiResponses responses) {
    this.responses = responses;
  }

  /** A streamed chunk of choice {@code index} ({@code firstOfChoice}: its first, which carries the role). */
  ObjectNode chunk(int index, GenerateResponse r, boolean firstOfChoice) {
    return responses.chunk(index, r, firstOfChoice);
  }

  /** The usage chunk after every choice ended; {@code usages} in index order. */
  ObjectNode usageChunk(List<Usage> usages) {
    return responses.usageChunk(responses.totalUsage(usages));
  }

  /** {@code status} with its field in the terms of the request's body ({@link OpenAiResponses#inHttpTerms}). */
  Status inHttpTerms(Status status) {
    return responses.inHttpTerms(status);
  }

  /** The whole body once every choice ended; {@code choices} and {@code usages} in index order. */
  ObjectNode complete(List<OpenAiResponses.ChoiceResult> choices, List<Usage> usages) {
    return responses.complete(choices, responses.totalUsage(usages));
  }
}
