package sphinxserve.structured;

import java.util.List;
import java.util.Locale;

/**
 * The grammar of SPHINX's grounded answers: free text with boxes and keypoints written the way SPHINX writes
 * them and the client's {@code SphinxOutputs} parser reads them, so that every answer the grammar allows parses
 * with nothing skipped.
 *
 * <pre>
 *   There are two people[0.45,0.20,0.63,0.74;0.56,0.21,0.73,0.72] here.   boxes: "[" box (";" box)* "]"
 *   &lt;p&gt;person&lt;/p&gt; [0.45,0.20,0.63,0.74]                                   a box after any text
 *   nose[0.65,0.26], left eye[0.66,0.25;0.31,0.40]                        points right after a COCO name
 *   &lt;p&gt;left eye&lt;/p&gt; [0.45,0.23]                                           points after a tagged COCO name
 * </pre>
 *
 * <p>What the parser demands, and how the grammar meets it:
 * <ul>
 *   <li>Coordinates {@code 0.00}–{@code 1.00}, two decimals ({@code "0." [0-9] [0-9] | "1.00"}).
 *   <li>Box corners in order, {@code x2 >= x1} and {@code y2 >= y1}: a box is {@code x1 "," y1 "," x2 "," y2}
 *       and the two comparisons cross, so the grammar carries {@code (x1, y1)} as state: one rule per
 *       {@code x1} listing each {@code y1} followed by "at least x1" and "at least y1" rules (101 × 101
 *       alternatives; the language is finite, so this is a plain finite-state product).
 *   <li>A point only where the bracket's subject is a COCO keypoint: the name (lowercase, words joined by a
 *       space or {@code _}) right before {@code [}, itself at the start, after whitespace, after one of the
 *       parser's phrase delimiters ({@code .,;:!?(){}<>"}) or after a bracket — so the parser's last word(s)
 *       are exactly the name — or a tagged {@code <p>name</p>}.
 *   <li>Free text never holds {@code [} or {@code ]}: every bracket is one of the above.
 * </ul>
 * The text is unbounded: grounded answers are prose, and {@code max_tokens} ends them.
 */
public final class GroundingGrammar {
  /** Characters the parser treats as ending a phrase, plus ASCII whitespace: a keypoint name may follow them. */
  static final String BOUNDARY = " \t\n\r\u000B\f.,;:!?(){}<>\"";

  /** The 17 COCO keypoint names, words separated by a space. */
  static final List<String> KEYPOINTS = List.of("nose", "left eye", "right eye", "left ear", "right ear",
      "left shoulder", "right shoulder", "left elbow", "right elbow", "left wrist", "right wrist", "left hip",
      "right hip", "left knee", "right knee", "left ankle", "right ankle");

  /** Number of distinct coordinates (0.00 to 1.00). */
  private static final int NUM_COORDS = 101;

  private static final String TEXT = build();

  /** Parsed once, on first use (a few hundred milliseconds: the box rules are most of it). */
  private static volatile Grammar grammar;

  private GroundingGrammar() {}

  /** The GBNF text. */
  public static String gbnf() {
    return TEXT;
  }

  /** The grammar, parsed once and shared (a {@link Grammar} is immutable). */
  public static Grammar grammar() {
    Grammar g = grammar;
    if (g == null) {
      synchronized (GroundingGrammar.class) {
        g = grammar;
        if (g == null) {
          g = Grammar.gbnf(TEXT);
          grammar = g;
        }
      }
    }
    return g;
  }

  private static String build() {
    StringBuilder g = new StringBuilder();
    String boundary = Gbnf.charClass(CodePointSet.chars(BOUNDARY));
    String word = Gbnf.charClass(CodePointSet.chars(BOUNDARY + "[]").complement());
    g.append("root ::= keypoints (word | separator keypoints)*\n");
    g.append("keypoints ::= keypoint*\n");
    g.append("word ::= ").append(word).append('\n');
    g.append("separator ::= ").append(boundary).append(" | boxes | tagged-keypoint\n");
    g.append("keypoint ::= keypoint-name points\n");
    g.append("tagged-keypoint ::= \"<p>\" keypoint-name \"</p>\" \" \"? points\n");
    StringBuilder names = new StringBuilder("keypoint-name ::= ");
    for (int i = 0; i < KEYPOINTS.size(); i++) {
      String name = KEYPOINTS.get(i);
      names.append(i == 0 ? "" : " | ").append(Gbnf.literal(name));
      if (name.contains(" ")) {
        names.append(" | ").append(Gbnf.literal(name.replace(' ', '_')));
      }
    }
    g.append(names).append('\n');
    g.append("points ::= \"[\" point (\";\" point)* \"]\"\n");
    g.append("point ::= coord \",\" coord\n");
    g.append("coord ::= \"0.\" [0-9] [0-9] | \"1.00\"\n");
    g.append("boxes ::= \"[\" box (\";\" box)* \"]\"\n");
    // box: x1 then, per x1 (rule boxN, N = x1 in hundredths), y1 then x2 >= x1 and y2 >= y1 (rule geN: >= N/100).
    // Short names: these two families are 10,302 references, most of the grammar's text.
    g.append("box ::= ");
    for (int x = 0; x < NUM_COORDS; x++) {
      g.append(x == 0 ? "" : " | ").append(Gbnf.literal(coord(x) + ",")).append(" box").append(x);
    }
    g.append('\n');
    for (int x = 0; x < NUM_COORDS; x++) {
      g.append("box").append(x).append(" ::= ");
      for (int y = 0; y < NUM_COORDS; y++) {
        g.append(y == 0 ? "" : " | ").append(Gbnf.literal(coord(y) + ",")).append(" ge").append(x)
            .append(" \",\" ge").append(y);
      }
      g.append('\n');
    }
    for (int v = 0; v < NUM_COORDS; v++) {
      g.append("ge").append(v).append(" ::= ").append(atLeast(v)).append('\n');
    }
    return g.toString();
  }

  /** Coordinates {@code >= v/100}, digit by digit. */
  private static String atLeast(int v) {
    if (v == 100) {
      return "\"1.00\"";
    }
    int tens = v / 10;
    int ones = v % 10;
    StringBuilder s = new StringBuilder("\"0.").append(tens).append('"');
    s.append(ones == 0 ? " [0-9]" : ones == 9 ? " \"9\"" : " [" + ones + "-9]");
    if (tens < 9) {
      s.append(" | \"0.\" ").append(tens + 1 == 9 ? "\"9\"" : "[" + (tens + 1) + "-9]").append(" [0-9]");
    }
    return s.append(" | \"1.00\"").toString();
  }

  private static String coord(int v) {
    return String.format(Locale.ROOT, "%d.%02d", v / 100, v % 100);
  }
}
