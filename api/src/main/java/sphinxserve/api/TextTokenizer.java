package sphinxserve.api;

/**
 * A bundle's tokenizer. Implementations are thread-safe.
 *
 * <p>{@link #tokenBytes} exposes the raw UTF-8 bytes each token stands for so that the scheduler can
 * detokenise incrementally without ever emitting half a character.
 */
public interface TextTokenizer {

  /** Token ids of {@code text}, without BOS/EOS or any other special token. */
  int[] encode(String text);

  /** The bytes token {@code id} contributes to the text (empty for special tokens). */
  byte[] tokenBytes(int id);

  /** Decoded text of a whole id sequence, special tokens skipped. */
  String decode(int[] ids);

  /** Size of the vocabulary, special tokens included. */
  int vocabSize();
}
