package sphinxserve.runtime.chat;

import java.util.Objects;

/**
 * One message of a conversation.
 *
 * @param role {@code "system"}, {@code "user"} or {@code "assistant"} (templates decide what else they accept)
 * @param content the message text, as the user or model wrote it
 */
public record ChatTurn(String role, String content) {
  public ChatTurn {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(content, "content");
  }

  /** A {@code system} turn. */
  public static ChatTurn system(String content) {
    return new ChatTurn("system", content);
  }

  /** A {@code user} turn. */
  public static ChatTurn user(String content) {
    return new ChatTurn("user", content);
  }

  /** An {@code assistant} turn. */
  public static ChatTurn assistant(String content) {
    return new ChatTurn("assistant", content);
  }
}
