package sphinxserve.runtime.tokenizer;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Writes a byte-level {@link BpeModel} as a Hugging Face {@code tokenizer.json}. */
final class TokenizerJsonWriter {
  /*
   * Layout, in a fixed key order so that the same model always gives the same bytes:
   *
   *   ids 0 .. k-1        the caller's special tokens, in list order; listed in "added_tokens" with
   *                       special=true and also in the model vocab (as RoBERTa's tokenizer.json does)
   *   ids k .. k+255      the 256 byte tokens, in byte order
   *   ids k+256 ..        merged tokens, in the order training created them
   *
   * Pre-tokenizer and decoder are ByteLevel (add_prefix_space=false, use_regex=true); normalizer and
   * post_processor are null, so encoding never adds BOS/EOS or anything else implicitly. Merges are written
   * as "left right" strings, the form every tokenizers version reads; byte-level tokens never contain a
   * space (it is 'Ġ'), so the split is unambiguous. One vocab entry and one merge per line keeps the file
   * diffable. Non-ASCII is written raw (UTF-8), as Hugging Face writes it; strings are escaped by Jackson's
   * JsonStringEncoder (quotes, backslashes, control characters).
   */

  private TokenizerJsonWriter() {}

  /**
   * The {@code tokenizer.json} text of {@code model} with {@code specialTokens} as ids {@code 0..k-1}.
   *
   * @throws IllegalArgumentException when a special token is empty, repeated, not encodable as UTF-8 (a lone
   *     surrogate), or equal to a BPE token
   */
  static String write(BpeModel model, List<String> specialTokens) {
    Set<String> seen = new HashSet<>();
    for (String special : specialTokens) {
      if (special.isEmpty() || !seen.add(special)) {
        throw new IllegalArgumentException("special tokens must be non-empty and distinct: " + specialTokens);
      }
      if (!StandardCharsets.UTF_8.newEncoder().canEncode(special)) {
        // Neither a UTF-8 file nor Hugging Face's JSON reader (which rejects lone surrogate escapes) can carry it.
        throw new IllegalArgumentException("special token '" + special + "' is not valid UTF-16 (lone surrogate)");
      }
    }
    for (String token : model.tokens()) {
      if (seen.contains(token)) {
        throw new IllegalArgumentException("special token '" + token + "' is also a byte-level BPE token");
      }
    }
    int numSpecial = specialTokens.size();
    StringBuilder out = new StringBuilder(64 * (model.tokens().size() + model.merges().size()));
    out.append("{\n");
    out.append("  \"version\": \"1.0\",\n");
    out.append("  \"truncation\": null,\n");
    out.append("  \"padding\": null,\n");
    out.append("  \"added_tokens\": [");
    for (int id = 0; id < numSpecial; id++) {
      out.append(id == 0 ? "\n" : ",\n").append("    {\"id\": ").append(id).append(", \"content\": ");
      quote(specialTokens.get(id), out);
      out.append(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}");
    }
    out.append(numSpecial == 0 ? "],\n" : "\n  ],\n");
    out.append("  \"normalizer\": null,\n");
    out.append("  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n");
    out.append("  \"post_processor\": null,\n");
    out.append("  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n");
    out.append("  \"model\": {\n");
    out.append("    \"type\": \"BPE\",\n");
    out.append("    \"dropout\": null,\n");
    out.append("    \"unk_token\": null,\n");
    out.append("    \"continuing_subword_prefix\": null,\n");
    out.append("    \"end_of_word_suffix\": null,\n");
    out.append("    \"fuse_unk\": false,\n");
    out.append("    \"byte_fallback\": false,\n");
    out.append("    \"vocab\": {");
    int id = 0;
    for (String special : specialTokens) {
      vocabEntry(out, special, id++);
    }
    for (String token : model.tokens()) {
      vocabEntry(out, token, id++);
    }
    out.append("\n    },\n");
    out.append("    \"merges\": [");
    boolean first = true;
    for (String[] merge : model.merges()) {
      out.append(first ? "\n      " : ",\n      ");
      first = false;
      quote(merge[0] + " " + merge[1], out);
    }
    out.append(first ? "]\n" : "\n    ]\n");
    out.append("  }\n");
    out.append("}\n");
    return out.toString();
  }

  private static void vocabEntry(StringBuilder out, String token, int id) {
    out.append(id == 0 ? "\n      " : ",\n      ");
    quote(token, out);
    out.append(": ").append(id);
  }

  /** Appends {@code s} as a JSON string literal. */
  private static void quote(String s, StringBuilder out) {
    out.append('"');
    JsonStringEncoder.getInstance().quoteAsString(s, out);
    out.append('"');
  }
}
