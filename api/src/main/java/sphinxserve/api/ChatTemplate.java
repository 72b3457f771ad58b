package sphinxserve.api;

/**
 * The conversation template of a bundle (SPHINX's {@code conv_v1_2} by default): {@code system}, then for
 * every turn {@code userPrefix + text + turnSeparator} or {@code assistantPrefix + text + turnSeparator}, and
 * finally {@code assistantPrefix} with no text so the model answers. The image span is inserted right after
 * BOS, before the system text, as SPHINX does.
 *
 * @param system the system preamble
 * @param userPrefix text before a human turn, e.g. {@code "### Human: "}
 * @param assistantPrefix text before an assistant turn, e.g. {@code "### Assistant:"}
 * @param turnSeparator text after every finished turn, e.g. {@code "\n"}
 */
public record ChatTemplate(String system, String userPrefix, String assistantPrefix, String turnSeparator) {}
