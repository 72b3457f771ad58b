package sphinxserve.runtime.tokenizer;

import java.util.List;

/**
 * A learned byte-level BPE without special tokens.
 *
 * @param tokens byte-level token strings by rank: the 256 single-byte tokens in byte order, then every token
 *     a merge created, in the order it was first created
 * @param merges the merge rules in priority order, each {@code [left, right]}; {@code left + right} is a token
 */
record BpeModel(List<String> tokens, List<String[]> merges) {

  BpeModel {
    tokens = List.copyOf(tokens);
    merges = List.copyOf(merges);
  }
}
