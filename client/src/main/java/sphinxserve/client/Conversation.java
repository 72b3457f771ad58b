package sphinxserve.client;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.GenerateRequest;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.Message;
import dev.sphinxserve.proto.v1.Role;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CancellationException;

/**
 * A multi-turn chat about one image.
 *
 * <p>How: the first turn sends the image's bytes; the node caches its embeddings under its digest, so later turns
 * send only the digest (with the whole conversation so far, as SPHINX's template needs). A node that no longer holds
 * the image (evicted, restarted, or another node behind the balancer) answers {@code NOT_FOUND}; the call then
 * resends the same turn with the bytes, transparently. A turn enters the history only when its answer completed.
 * One turn at a time: asking while a turn is in flight throws {@link IllegalStateException}.
 */
public final class Conversation {
  private final SphinxClient client;
  private final Image image;
  private final Object lock = new Object();
  private final List<Message> history = new ArrayList<>(); // guarded by lock
  private boolean imageSent; // guarded by lock
  private boolean inFlight; // guarded by lock

  Conversation(SphinxClient client, Image image) {
    this.client = client;
    this.image = Objects.requireNonNull(image, "image");
  }

  /** The image this conversation is about. */
  public Image image() {
    return image;
  }

  /** The completed turns, oldest first: user and assistant messages alternating. */
  public List<Message> history() {
    synchronized (lock) {
      return List.copyOf(history);
    }
  }

  /** Asks the next question and waits for the whole answer. */
  public Answer ask(String question) {
    return SphinxClient.await(ask(question, new GenerationListener() { }));
  }

  /** Asks the next question, streaming the answer to callbacks; the turn is recorded when it completes. */
  public GenerationHandle ask(String question, GenerationListener listener) {
    Objects.requireNonNull(question, "question");
    Objects.requireNonNull(listener, "listener");
    PreparedRequest prepared;
    synchronized (lock) {
      if (inFlight) {
        throw new IllegalStateException("a turn is still in flight; wait for its answer first");
      }
      inFlight = true;
      prepared = imageSent
          ? new PreparedRequest(requestLocked(SphinxClient.imageDigest(image), question),
              Optional.of(requestLocked(SphinxClient.imageBytes(image), question)), Optional.of(image.digest()))
          : new PreparedRequest(requestLocked(SphinxClient.imageBytes(image), question), Optional.empty(),
              Optional.of(image.digest()));
    }
    Message userMessage = SphinxClient.userTurn(null, question);
    GenerationHandle handle = client.generate(prepared, new GenerationListener() {
      @Override
      public void onResponse(GenerateResponse response) {
        listener.onResponse(response);
      }

      @Override
      public void onComplete(Answer answer) {
        synchronized (lock) {
          history.add(userMessage);
          history.add(Message.newBuilder().setRole(Role.ASSISTANT)
              .addContent(Content.newBuilder().setText(answer.text())).build());
          imageSent = true;
          inFlight = false;
        }
        listener.onComplete(answer);
      }

      @Override
      public void onError(Throwable error) {
        synchronized (lock) {
          inFlight = false;
        }
        listener.onError(error);
      }
    });
    handle.answer().whenComplete((answer, error) -> {
      if (error instanceof CancellationException) { // a cancelled turn gets no callback
        synchronized (lock) {
          inFlight = false;
        }
      }
    });
    return handle;
  }

  /** The conversation so far plus the question; the image goes into the first user message. */
  private GenerateRequest requestLocked(Content imageContent, String question) {
    List<Message> messages = new ArrayList<>(history);
    messages.add(SphinxClient.userTurn(null, question));
    Message first = messages.getFirst().toBuilder().addContent(0, imageContent).build();
    messages.set(0, first);
    return client.request(messages);
  }
}
