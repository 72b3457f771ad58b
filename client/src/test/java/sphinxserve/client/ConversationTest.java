package sphinxserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sphinxserve.proto.v1.Content;
import dev.sphinxserve.proto.v1.Role;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.client.ScriptedSphinxServer.Received;
import sphinxserve.client.ScriptedSphinxServer.Reply;

/** Conversations against a real grpc-java server on loopback ({@link ScriptedSphinxServer}). */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class ConversationTest {
  private static final Image IMAGE = Image.of(TestImages.png(40, 30));

  @RegisterExtension
  final ScriptedSphinxServer node = new ScriptedSphinxServer();

  private SphinxClient client;

  private Conversation conversation() {
    client = SphinxClient.builder().target(node.target())
        .retry(new RetrySettings(3, Duration.ofMillis(5), 2, 0.5, Duration.ofMillis(20))).build();
    return client.conversation(IMAGE);
  }

  @AfterEach
  void close() {
    if (client != null) {
      client.close();
    }
  }

  @Test
  void ask_sendsTheImageOnceThenOnlyItsDigest() {
    node.script(Reply.answer("A cat."), Reply.answer("Grey."));
    Conversation chat = conversation();
    assertEquals("A cat.", chat.ask("What is it?").text());
    assertEquals("Grey.", chat.ask("What colour?").text());

    List<Received> received = node.received();
    assertEquals(2, received.size());
    assertEquals(Content.KindCase.IMAGE, received.get(0).image().orElseThrow().getKindCase());
    assertEquals(Content.KindCase.IMAGE_DIGEST, received.get(1).image().orElseThrow().getKindCase());
    assertEquals(IMAGE.digest(), received.get(1).image().orElseThrow().getImageDigest());
    received.forEach(r -> assertEquals(IMAGE.digest(), r.imageDigestHeader()));

    // The second request carries the whole conversation: user (image first), assistant, user.
    var messages = received.get(1).request().getMessagesList();
    assertEquals(List.of(Role.USER, Role.ASSISTANT, Role.USER), messages.stream().map(m -> m.getRole()).toList());
    assertEquals("What is it?", messages.get(0).getContent(1).getText());
    assertEquals("A cat.", messages.get(1).getContent(0).getText());
    assertEquals("What colour?", messages.get(2).getContent(0).getText());
    assertEquals(4, chat.history().size());
  }

  @Test
  void ask_resendsTheBytesWhenTheNodeForgotTheImage() {
    node.script(Reply.answer("A cat."), Reply.answer("Grey."));
    Conversation chat = conversation();
    chat.ask("What is it?");
    node.forgetImages();
    assertEquals("Grey.", chat.ask("What colour?").text());

    List<Received> received = node.received();
    assertEquals(List.of(Content.KindCase.IMAGE, Content.KindCase.IMAGE_DIGEST, Content.KindCase.IMAGE),
        received.stream().map(r -> r.image().orElseThrow().getKindCase()).toList());
    assertEquals(received.get(1).request().getMessagesCount(), received.get(2).request().getMessagesCount());
  }

  @Test
  void ask_failedTurnIsNotRecorded() {
    node.script(Reply.fail(io.grpc.Status.Code.INVALID_ARGUMENT), Reply.answer("A cat."));
    Conversation chat = conversation();
    assertThrows(io.grpc.StatusRuntimeException.class, () -> chat.ask("What is it?"));
    assertEquals(0, chat.history().size());
    chat.ask("What is it?");
    assertEquals(Content.KindCase.IMAGE, node.received().get(1).image().orElseThrow().getKindCase());
  }

  @Test
  void ask_oneTurnAtATime() {
    node.script(Reply.slow(Duration.ofMillis(300), "slow"));
    Conversation chat = conversation();
    GenerationHandle first = chat.ask("one", new GenerationListener() { });
    assertThrows(IllegalStateException.class, () -> chat.ask("two"));
    first.answer().join();
    chat.ask("two");
  }
}
