package sphinxserve.api;

/**
 * What one request cost, reported with its finish.
 *
 * @param promptTokens prompt tokens, image positions included
 * @param completionTokens tokens generated
 * @param imageTokens image positions in the prompt
 * @param cachedPromptTokens prompt tokens served from the prefix cache at first admission
 * @param queueSeconds from submission to first admission
 * @param timeToFirstTokenSeconds from submission to the first generated token (0 if none)
 * @param numPreemptions times the request was preempted and recomputed
 */
public record Usage(int promptTokens, int completionTokens, int imageTokens, int cachedPromptTokens, double queueSeconds,
    double timeToFirstTokenSeconds, int numPreemptions) {}
