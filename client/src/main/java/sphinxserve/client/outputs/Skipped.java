package sphinxserve.client.outputs;

/**
 * A fragment of an answer that looked like coordinates but could not be read; the parser skips it and says why.
 *
 * @param offset   index of the fragment's first character in the answer
 * @param fragment the fragment as written (shortened when very long)
 * @param reason   why it was skipped, for a person to read
 */
public record Skipped(int offset, String fragment, String reason) {}
