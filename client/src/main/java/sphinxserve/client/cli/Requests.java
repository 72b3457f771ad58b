package sphinxserve.client.cli;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import dev.sphinxserve.proto.v1.SamplingParams;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import sphinxserve.client.Answer;
import sphinxserve.client.GenerationHandle;
import sphinxserve.client.Image;

/** Builds the CLI's requests and waits for answers. */
final class Requests {
  private Requests() {}

  static GenerateRequest ask(Image image, String question, SamplingParams sampling) {
    Message.Builder user = Message.newBuilder().setRole(Role.USER);
    if (image != null) user.addContent(Content.newBuilder().setImage(image.bytes()));
    return GenerateRequest.newBuilder().setSampling(sampling).addMessages(user.addContent(Content.newBuilder().setText(question))).build();
  }

  /** The answer; on Ctrl-C style interruption the generation is cancelled. */
  static Answer await(GenerationHandle handle) {
    try {
      return handle.answer().get();
    } catch (InterruptedException e) {
      handle.cancel();
      Thread.currentThread().interrupt();
      throw new UserError("interrupted");
    } catch (CancellationException e) {
      throw new UserError("cancelled");
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new IllegalStateException(e.getCause());
    }
  }
}
