package sphinxserve.structured;

/** Grammars the tests and the benchmark share. */
final class TestGrammars {
  private TestGrammars() {}

  /** llama.cpp's JSON grammar with bounded whitespace (test resource json.gbnf). */
  static String json() {
    return GbnfParserTest.resource("json.gbnf");
  }

  /**
   * A JSON object with {@code numProperties} required properties in order, shaped like llama.cpp's
   * json-schema-to-grammar output: strings (bounded length), integers, numbers, booleans, an enum and arrays of
   * strings, cycling.
   */
  static String objectWithProperties(int numProperties) {
    StringBuilder sb = new StringBuilder();
    sb.append("root ::= \"{\" space ");
    for (int i = 0; i < numProperties; i++) {
      if (i > 0) sb.append(" \",\" space ");
      sb.append("p").append(i).append("-kv");
    }
    sb.append(" \"}\" space\n");
    String[] types = {"string", "integer", "number", "boolean", "colour", "string-array"};
    for (int i = 0; i < numProperties; i++) {
      sb.append("p").append(i).append("-kv ::= \"\\\"property_").append(i).append("\\\"\" space \":\" space ")
          .append(types[i % types.length]).append('\n');
    }
    sb.append("""
        space ::= | " " | "\\n" [ \\t]{0,20}
        char ::= [^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\bfnrt] | "u" [0-9a-fA-F]{4})
        string ::= "\\"" char{0,64} "\\"" space
        integer ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) space
        number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? space
        boolean ::= ("true" | "false") space
        colour ::= ("\\"red\\"" | "\\"green\\"" | "\\"blue\\"" | "\\"dark red\\"") space
        string-array ::= "[" space (string ("," space string){0,9})? "]" space
        """);
    return sb.toString();
  }
}
