package sphinxserve.structured;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.structured.SchemaTesting.accepts;
import static sphinxserve.structured.SchemaTesting.json;
import static sphinxserve.structured.SchemaTesting.overBytes;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The converter: its text for small schemas, the exact language it gives each keyword (checked byte by byte
 * through the real matcher over a one-byte-per-token vocabulary), and refusals naming their path.
 */
class JsonSchemaGrammarTest {

  @Test
  void gbnf_smallObject_readableGrammar() {
    String gbnf = JsonSchemaGrammar.gbnf(json("{'type':'object','properties':{'ok':{'type':'boolean'}},'required':['ok']}"));
    assertEquals("""
        root ::= root-2
        ws ::= ((" " | "\\n" ([ \\t]){0,20}))?
        json-boolean ::= ("true" | "false")
        root-2 ::= "{" ws "\\"ok\\"" ws ":" ws json-boolean ws "}"
        """, gbnf);
    Grammar.gbnf(gbnf); // their parser reads it
  }

  @Test
  void convert_properties_requiredAlwaysOptionalMayBeSkippedOrderKept() {
    CompiledGrammar g = overBytes(json("{'type':'object','properties':{'a':{'type':'integer'},'b':{'type':'integer'},"
        + "'c':{'type':'integer'}},'required':['c']}"));
    for (String ok : List.of("{\"c\":1}", "{\"a\":1,\"c\":2}", "{\"b\":1,\"c\":2}", "{\"a\":1,\"b\":2,\"c\":3}", "{ \"a\" : 1 , \"c\" : 3 }")) {
      assertTrue(accepts(g, ok), ok);
    }
    for (String bad : List.of("{}", "{\"a\":1}", "{\"c\":1,\"a\":2}", "{\"c\":1,\"c\":2}", "{\"c\":1,\"d\":2}", "{\"c\":1,}", "{,\"c\":1}")) {
      assertFalse(accepts(g, bad), bad);
    }
  }

  @Test
  void convert_additionalProperties_absentFalseTrueSchema() {
    String props = "'properties':{'a':{'type':'integer'}},'required':['a']";
    assertFalse(accepts(overBytes(json("{'type':'object'," + props + "}")), "{\"a\":1,\"x\":2}"));
    assertFalse(accepts(overBytes(json("{'type':'object'," + props + ",'additionalProperties':false}")), "{\"a\":1,\"x\":2}"));
    CompiledGrammar any = overBytes(json("{'type':'object'," + props + ",'additionalProperties':true}"));
    assertTrue(accepts(any, "{\"a\":1,\"x\":[1,{\"y\":null}],\"\":\"z\"}"));
    CompiledGrammar typed = overBytes(json("{'type':'object'," + props + ",'additionalProperties':{'type':'string','maxLength':2}}"));
    assertTrue(accepts(typed, "{\"a\":1,\"x\":\"ok\",\"ab\":\"\"}"));
    assertFalse(accepts(typed, "{\"a\":1,\"x\":3}"));
    assertFalse(accepts(typed, "{\"a\":1,\"a\":\"no\"}"), "a declared name is not an additional property");
    assertTrue(accepts(typed, "{\"a\":1,\"aa\":\"ok\"}"), "a name that merely starts like a declared one is");
    assertFalse(accepts(typed, "{\"x\":\"ok\",\"a\":1}"), "additional properties come after the declared ones");
  }

  @Test
  void convert_whitespace_boundedPrettyPrintingFits() {
    CompiledGrammar g = overBytes(json("{'type':'object','properties':{'a':{'type':'array','items':{'type':'integer'}}},'required':['a']}"));
    assertTrue(accepts(g, "{\n  \"a\": [\n    1,\n    2\n  ]\n}"));
    assertTrue(accepts(g, "{\n" + " ".repeat(20) + "\"a\":[]}"));
    assertFalse(accepts(g, "{\n" + " ".repeat(21) + "\"a\":[]}"), "at most 20 spaces after a newline");
    assertFalse(accepts(g, "{  \"a\":[]}"), "two spaces without a newline");
    assertFalse(accepts(g, " {\"a\":[]}"), "nothing before the first token");
    assertFalse(accepts(g, "{\"a\":[]} "), "nothing after the last token");
  }

  @Test
  void convert_stringLengths_countCodePointsWithEscapes() {
    CompiledGrammar g = overBytes(json("{'type':'string','minLength':2,'maxLength':3}"));
    for (String ok : List.of("\"ab\"", "\"abc\"", "\"\\n\\t\"", "\"\\u00e9x\"", "\"😀é\"", "\"a\\\"b\"")) {
      assertTrue(accepts(g, ok), ok);
    }
    for (String bad : List.of("\"a\"", "\"abcd\"", "\"\\ud83d\\ude00\"", "\"a\nb\"", "\"a\\x\"", "\"a\"b\"")) {
      assertFalse(accepts(g, bad), bad);
    }
  }

  @Test
  void convert_formats_onlyValidValues() {
    assertLanguage("{'type':'string','format':'date'}",
        List.of("\"2024-02-29\"", "\"2000-02-29\"", "\"1999-12-31\"", "\"2023-04-30\""),
        List.of("\"2023-02-29\"", "\"1900-02-29\"", "\"2023-04-31\"", "\"2023-13-01\"", "\"2023-1-01\"", "\"2023-01-00\""));
    assertLanguage("{'type':'string','format':'time'}",
        List.of("\"23:59:59Z\"", "\"00:00:00.123+05:30\"", "\"12:30:00-08:00\""),
        List.of("\"24:00:00Z\"", "\"12:60:00Z\"", "\"12:00:00\"", "\"12:00Z\""));
    assertLanguage("{'type':'string','format':'date-time'}",
        List.of("\"2024-01-15T08:30:00Z\""), List.of("\"2024-01-15 08:30:00Z\"", "\"2024-01-15\""));
    assertLanguage("{'type':'string','format':'uuid'}",
        List.of("\"123e4567-e89b-12d3-a456-426614174000\""), List.of("\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400\""));
    assertLanguage("{'type':'string','format':'email'}",
        List.of("\"jane.doe+tag@mail.example.com\"", "\"a@b.io\""), List.of("\"a@b\"", "\"a..b@c.com\"", "\"@c.com\"", "\"a@-b.com\"",
            "\"" + "a".repeat(15) + ("." + "a".repeat(15)).repeat(3) + ".a@b.com\""));
    assertLanguage("{'type':'string','format':'ipv4'}",
        List.of("\"192.168.0.1\"", "\"0.0.0.0\"", "\"255.255.255.255\""), List.of("\"256.1.1.1\"", "\"01.1.1.1\"", "\"1.1.1\""));
    assertLanguage("{'type':'string','format':'hostname'}",
        List.of("\"localhost\"", "\"api-1.example.com\""), List.of("\"-a.com\"", "\"a-.com\"", "\"a..b\"", "\"1.2.3.4\""));
    assertLanguage("{'type':'string','format':'uri'}",
        List.of("\"https://example.com\"", "\"https://a.b/c/d.json\""), List.of("\"example.com\"", "\"https://\"", "\"https://a b\""));
  }

  @Test
  void convert_integerBounds_exactlyTheRange() {
    Random random = new Random(27);
    List<long[]> ranges = new ArrayList<>(List.of(new long[] {0, 120}, new long[] {-17, 3}, new long[] {1888, 2030},
        new long[] {-1000, -999}, new long[] {7, 7}, new long[] {-5, 0}, new long[] {0, 0}, new long[] {99, 101}));
    for (int i = 0; i < 6; i++) {
      long lo = random.nextInt(20_000) - 10_000;
      ranges.add(new long[] {lo, lo + random.nextInt(3_000)});
    }
    for (long[] r : ranges) {
      CompiledGrammar g = overBytes(json("{'type':'integer','minimum':" + r[0] + ",'maximum':" + r[1] + "}"));
      for (long v = r[0] - 40; v <= r[1] + 40; v++) {
        assertEquals(v >= r[0] && v <= r[1], accepts(g, Long.toString(v)), r[0] + ".." + r[1] + " at " + v);
      }
      assertFalse(accepts(g, "-0"));
      assertFalse(accepts(g, "0" + Math.max(1, r[1])), "no leading zeros");
    }
    CompiledGrammar exclusive = overBytes(json("{'type':'integer','exclusiveMinimum':-3.5,'exclusiveMaximum':4}"));
    for (long v = -10; v <= 10; v++) {
      assertEquals(v >= -3 && v <= 3, accepts(exclusive, Long.toString(v)), "exclusive at " + v);
    }
    CompiledGrammar open = overBytes(json("{'type':'integer','minimum':5}"));
    assertTrue(accepts(open, "9999999999999999"));
    assertFalse(accepts(open, "10000000000000000"), "17 digits exceed the cap");
    assertFalse(accepts(open, "4"));
  }

  @Test
  void convert_numberIntegralBounds_enforced() {
    assertLanguage("{'type':'number','minimum':-90,'maximum':90}",
        List.of("90", "90.000", "-90", "-90.0", "0", "-0.5", "89.999999", "45.25"),
        List.of("90.001", "-90.01", "91", "1e2", "-100", "90.", ".5"));
    assertLanguage("{'type':'number','exclusiveMinimum':0,'maximum':1}",
        List.of("0.001", "1", "1.00", "0.5"),
        List.of("0", "0.0", "0.000", "-0.1", "1.01"));
    assertLanguage("{'type':'number','exclusiveMaximum':0}",
        List.of("-0.001", "-5", "-123.4"),
        List.of("0", "0.5", "-0", "-0.0"));
    assertLanguage("{'type':'number'}",
        List.of("0", "-1.5", "3e10", "2.5E-3", "1234567890123456.1234567890123456"),
        List.of("01", "1.", "+1", "1e", "1e123", "12345678901234567"));
  }

  @Test
  void convert_arrays_countsPrefixAndTail() {
    assertLanguage("{'type':'array','items':{'type':'integer'},'minItems':1,'maxItems':3}",
        List.of("[1]", "[1,2,3]", "[ 1 , 2 ]"), List.of("[]", "[1,2,3,4]", "[1,]"));
    assertLanguage("{'type':'array','prefixItems':[{'type':'string','maxLength':1},{'type':'integer'}]}",
        List.of("[\"a\",1]"), List.of("[\"a\"]", "[\"a\",1,2]", "[1,\"a\"]"));
    assertLanguage("{'type':'array','prefixItems':[{'const':'x'}],'items':{'type':'boolean'},'maxItems':3}",
        List.of("[\"x\"]", "[\"x\",true,false]"), List.of("[\"x\",true,false,true]", "[true]"));
    assertLanguage("{'$schema':'http://json-schema.org/draft-07/schema#','type':'array','items':[{'type':'null'}],'additionalItems':{'type':'integer'}}",
        List.of("[null]", "[null,1,2]"), List.of("[1]", "[null,null]"));
    assertLanguage("{'type':'array','maxItems':0}", List.of("[]"), List.of("[1]"));
  }

  @Test
  void convert_enumConstUnionsRefs_exactAlternatives() {
    assertLanguage("{'enum':['a',1,null,{'k':[true]}]}",
        List.of("\"a\"", "1", "null", "{\"k\":[true]}"), List.of("\"b\"", "1.0", "{ \"k\":[true]}"));
    assertLanguage("{'type':'string','enum':['a',1]}", List.of("\"a\""), List.of("1"));
    assertLanguage("{'anyOf':[{'type':'integer','minimum':0,'maximum':9},{'type':'null'}]}",
        List.of("0", "9", "null"), List.of("10", "\"x\""));
    assertLanguage("{'type':['string','null'],'maxLength':1}", List.of("\"a\"", "null"), List.of("\"ab\"", "1"));
    assertLanguage("{'$defs':{'n':{'type':'object','properties':{'c':{'type':'array','items':{'$ref':'#/$defs/n'}}}}},'$ref':'#/$defs/n'}",
        List.of("{}", "{\"c\":[]}", "{\"c\":[{\"c\":[{}]},{}]}"), List.of("{\"c\":[1]}"));
    assertLanguage("{'definitions':{'a b':{'const':1}},'properties':{'x':{'$ref':'#/definitions/a%20b'}}}",
        List.of("{\"x\":1}", "{}"), List.of("{\"x\":2}"));
  }

  @Test
  void convert_pattern_matchesLikeJavaFind() {
    List<String> patterns = List.of("^[A-Z]{3}-\\d{2,4}$", "^(foo|ba[rz])+$", "ab", "^a.c$", "^[^a-c\\s]{2}$",
        "^\\w+@\\w+\\.com$", "^\"?\\\\$", "^(?:x|y)?z*$", "^[\\u00e9-\\u00ea]$", "\\d$", "^(a|b)c{2}?$");
    List<String> samples = List.of("ABC-12", "ABC-1", "abc-12", "ABCD-123", "foo", "foobar", "fooba", "bazfoo", "xaby",
        "ab", "a", "abc", "a\nc", "axc", "dd", "d ", "de", "ñü", "a@b.com", "a@b.org", "\"\\", "\\", "\"", "z", "xzz",
        "xy", "é", "ê", "e", "x1", "1x", "acc", "bc", "bccc", "");
    for (String p : patterns) {
      CompiledGrammar g = overBytes(patternSchema(p));
      java.util.regex.Pattern regex = java.util.regex.Pattern.compile(p);
      for (String s : samples) {
        String quoted;
        try {
          quoted = SchemaTesting.JSON.writeValueAsString(s);
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
        assertEquals(regex.matcher(s).find(), accepts(g, quoted), "pattern " + p + " on " + quoted);
      }
    }
  }

  private static JsonNode patternSchema(String pattern) {
    com.fasterxml.jackson.databind.node.ObjectNode schema = SchemaTesting.JSON.createObjectNode();
    schema.put("type", "string");
    schema.put("pattern", pattern);
    return schema;
  }

  @Test
  void maxBytes_boundedSchema_isTheLongestAnswer() {
    assertEquals(OptionalLong.of(4), JsonSchemaGrammar.maxBytes(json("{'type':'integer','minimum':-999,'maximum':99}")));
    assertEquals(OptionalLong.of(5), JsonSchemaGrammar.maxBytes(json("{'enum':['a','bcd']}")));
    // "[" ws item ws ("," ws item ws){0,1} "]": 2 + 4*21 + 2*5 + 1
    assertEquals(OptionalLong.of(2 + 4 * 21 + 2 * 5 + 1),
        JsonSchemaGrammar.maxBytes(json("{'type':'array','items':{'type':'boolean'},'maxItems':2}")));
    // 6 bytes per character at most (a \\uXXXX escape) plus quotes.
    assertEquals(OptionalLong.of(2 + 6 * 10), JsonSchemaGrammar.maxBytes(json("{'type':'string','maxLength':10}")));
  }

  @Test
  void maxBytes_unboundedSchemas_empty() {
    for (String schema : List.of("{'type':'string'}", "{'type':'array','items':{'type':'null'}}", "{}",
        "{'type':'object','properties':{'a':{'type':'null'}},'additionalProperties':{'type':'null'}}",
        "{'properties':{'n':{'$ref':'#'}}}", "{'type':'string','pattern':'a'}")) {
      assertTrue(JsonSchemaGrammar.maxBytes(json(schema)).isEmpty(), schema);
    }
  }

  @Test
  void anyJson_objectsNestedUpToTheLimit() {
    CompiledGrammar g = overBytes(JsonSchemaGrammar.anyJson());
    assertTrue(accepts(g, "{}"));
    assertTrue(accepts(g, "{\"a\":[1,-2.5e3,\"x\",true,false,null,{\"b\":{}}]}"));
    assertFalse(accepts(g, "[1]"), "json_object: the top level is an object");
    assertFalse(accepts(g, "\"x\""));
    String deep = "{\"a\":".repeat(JsonSchemaGrammar.MAX_NESTING) + "1" + "}".repeat(JsonSchemaGrammar.MAX_NESTING);
    assertTrue(accepts(g, deep));
    String tooDeep = "{\"a\":".repeat(JsonSchemaGrammar.MAX_NESTING + 1) + "1" + "}".repeat(JsonSchemaGrammar.MAX_NESTING + 1);
    assertFalse(accepts(g, tooDeep));
  }

  @Test
  void embed_twoToolSchemasWithTheirOwnRefs_combineUnderOneRoot() {
    JsonNode weather = json("{'$defs':{'unit':{'enum':['c','f']}},'type':'object','properties':{'city':{'type':'string',"
        + "'maxLength':8},'unit':{'$ref':'#/$defs/unit'}},'required':['city'],'additionalProperties':false}");
    JsonNode search = json("{'$defs':{'unit':{'type':'integer','minimum':1,'maximum':9}},'type':'object','properties':{"
        + "'q':{'type':'string'},'n':{'$ref':'#/$defs/unit'}},'required':['q','n'],'additionalProperties':false}");
    JsonSchemaGrammar.Conversion w = JsonSchemaGrammar.embed(weather, "get-weather");
    JsonSchemaGrammar.Conversion q = JsonSchemaGrammar.embed(search, "search");
    assertEquals("get-weather-root", w.start());
    assertTrue(w.gbnf().lines().allMatch(line -> line.startsWith("get-weather-")), w.gbnf());
    assertTrue(q.gbnf().lines().allMatch(line -> line.startsWith("search-")), q.gbnf());
    String gbnf = "root ::= \"{\\\"name\\\": \" (\"\\\"get_weather\\\", \\\"arguments\\\": \" " + w.start()
        + " | \"\\\"search\\\", \\\"arguments\\\": \" " + q.start() + ") \"}\"\n" + w.gbnf() + q.gbnf();
    CompiledGrammar g = overBytes(gbnf);
    assertTrue(accepts(g, "{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\",\"unit\":\"c\"}}"));
    assertTrue(accepts(g, "{\"name\": \"search\", \"arguments\": {\"q\":\"x\",\"n\":3}}"));
    assertFalse(accepts(g, "{\"name\": \"search\", \"arguments\": {\"q\":\"x\",\"n\":\"c\"}}"), "each schema's own $defs");
    assertFalse(accepts(g, "{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\",\"unit\":3}}"));
    assertThrows(IllegalArgumentException.class, () -> JsonSchemaGrammar.embed(weather, "Bad Prefix"));
  }

  static Stream<Arguments> refused() {
    JsonNode cases = json(SchemaTesting.resource("refused-schemas.json"));
    List<Arguments> out = new ArrayList<>();
    cases.forEach(c -> out.add(Arguments.of(c.get("path").textValue(), c.get("schema"))));
    return out.stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("refused")
  void convert_unsupportedOrUnsatisfiable_refusedNamingThePath(String path, JsonNode schema) {
    SchemaException e = assertThrows(SchemaException.class, () -> JsonSchemaGrammar.convert(schema));
    assertEquals(path, e.path(), e.getMessage());
    assertTrue(e.getMessage().startsWith(path + ": "), e.getMessage());
  }

  @Test
  void convert_extremeNumbers_refusedNamingThePath() {
    for (String[] c : new String[][] {{"{'type':'integer','minimum':1e999}", "#/minimum"},
        {"{'type':'number','exclusiveMaximum':-1e999}", "#/exclusiveMaximum"}, {"{'enum':[1, 1e999]}", "#/enum"},
        {"{'type':'string','maxLength':1e999}", "#/maxLength"}, {"{'type':'array','minItems':2.5}", "#/minItems"}}) {
      SchemaException e = assertThrows(SchemaException.class, () -> JsonSchemaGrammar.convert(json(c[0])), c[0]);
      assertEquals(c[1], e.path(), e.getMessage());
    }
    // Huge bounds beyond the 16-digit cap are no constraint at all; tiny fractions round as integers must.
    assertTrue(accepts(overBytes(json("{'type':'integer','minimum':-1e300,'maximum':1e300}")), "-12"));
    assertLanguage("{'type':'integer','minimum':1e-300}", List.of("1"), List.of("0"));
  }

  @Test
  void convert_deeplyNestedSchema_refusedNotStackOverflow() {
    String deep = "{\"type\":\"array\",\"items\":".repeat(500) + "{}" + "}".repeat(500);
    SchemaException e = assertThrows(SchemaException.class, () -> JsonSchemaGrammar.convert(json(deep)));
    assertTrue(e.getMessage().contains("deeper than"), e.getMessage());
  }

  private static void assertLanguage(String schema, List<String> accepted, List<String> rejected) {
    CompiledGrammar g = overBytes(json(schema));
    for (String ok : accepted) {
      assertTrue(accepts(g, ok), () -> schema + " should accept " + ok);
    }
    for (String bad : rejected) {
      assertFalse(accepts(g, bad), () -> schema + " should reject " + bad);
    }
  }
}
