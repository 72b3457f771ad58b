package sphinxserve.runtime.chat;

/**
 * A chat template failed to compile or render: its message names the template source, what failed (the
 * template's own {@code raise_exception} message, or jinjava's error) and the line where jinjava reports one.
 */
public final class ChatTemplateException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  ChatTemplateException(String message) {
    super(message);
  }

  ChatTemplateException(String message, Throwable cause) {
    super(message, cause);
  }
}
