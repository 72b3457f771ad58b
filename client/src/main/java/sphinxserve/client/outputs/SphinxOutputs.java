package sphinxserve.client.outputs;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * Reads the regions and keypoints out of a SPHINX answer.
 *
 * <p>SPHINX (LLaMA2-Accessory, SPHINX-v2-1k) writes coordinates inline, two decimals, normalised to the padded square
 * image (see {@link PadToSquare}):
 *
 * <pre>
 *   There are three people[0.45,0.20,0.63,0.74;0.56,0.21,0.73,0.72] in the image.   boxes after a phrase
 *   &lt;p&gt;person&lt;/p&gt; [0.45,0.20,0.63,0.74]                                            boxes after a tagged label
 *   nose[0.65,0.26], left eye[0.66,0.25]                                             keypoints after their name
 *   &lt;p&gt;left eye&lt;/p&gt; [0.45,0.23]                                                    keypoints after a tagged name
 * </pre>
 *
 * <p>How: one left-to-right scan finds each {@code [...]}. A bracket holding anything but digits, signs, dots,
 * commas, semicolons and spaces is prose ({@code [sic]}) and ignored. Otherwise its {@code ;}-separated groups are
 * read: four numbers are a box, two a point. The bracket's subject comes from the text right before it: the label
 * inside an immediately preceding {@code <p>…</p>} (leading articles and counts dropped: {@code <p>two dogs</p>} →
 * {@code dogs}), or else the phrase back to the previous punctuation, of which the label is the trailing run of (at
 * most {@link #MAX_LABEL_WORDS}) words that are not function words, articles or counts
 * ({@code There are three people} → {@code people}; when the phrase ends in such words they are dropped first:
 * {@code the dog is at} → {@code dog}). A point is a keypoint when the subject ends with one of the 17 COCO names,
 * written with spaces or underscores ({@code and right ankle} → {@code right_ankle}).
 *
 * <p>Never throws on a non-null string and runs in time linear in its length: every character is visited a bounded
 * number of times (a bracket's lookback stops at the previous bracket and at {@link #MAX_PHRASE_CHARS}). Fragments
 * that look like coordinates but are not valid (wrong count, not a number, outside {@code [0, 1]}, corners out of
 * order, an unclosed bracket, a point with no keypoint name) are skipped and listed in {@link ParsedAnswer#skipped()}.
 */
public final class SphinxOutputs {
  /** Longest phrase, in characters, searched before a bracket for its label. */
  static final int MAX_PHRASE_CHARS = 200;
  /** Longest fragment text kept in a {@link Skipped} entry. */
  static final int MAX_FRAGMENT_CHARS = 120;
  /** Most words kept in a label taken from a bare phrase. */
  static final int MAX_LABEL_WORDS = 4;
  /** Most digits accepted in one number; longer runs are not coordinates. */
  static final int MAX_DIGITS = 32;

  /** Words that end a label when reading a phrase backwards: articles, counts, pronouns, verbs and prepositions. */
  private static final Set<String> STOP_WORDS = Set.of(
      "a", "an", "the", "this", "that", "these", "those", "there", "here", "it", "its", "their", "his", "her",
      "my", "your", "our", "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "of",
      "in", "on", "at", "to", "for", "with", "by", "from", "into", "onto", "and", "or", "as", "some", "several",
      "many", "all", "both", "each", "every", "any", "no", "other", "another", "i", "you", "we", "they", "he",
      "she", "see", "sees", "detected", "located", "shown", "found", "can", "also", "which", "who", "where",
      "whose", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
      "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "coordinates",
      "coordinate", "region", "regions", "box", "boxes", "keypoints", "keypoint");

  /** Counts and quantifiers dropped from the front of a tagged label. */
  private static final Set<String> COUNT_WORDS = Set.of(
      "a", "an", "the", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
      "twelve", "some", "several", "many", "all", "both", "each", "every");

  /** Characters that end a phrase when reading backwards from a bracket. */
  private static final String PHRASE_DELIMITERS = ".,;:!?()[]{}<>\"\n\r";

  private SphinxOutputs() {}

  /**
   * Parses an answer. Never throws on a non-null string; problems are reported in {@link ParsedAnswer#skipped()}.
   *
   * @param answer the model's answer, whole (a streamed answer once it finished)
   * @return the regions and keypoints in the order written
   */
  public static ParsedAnswer parse(String answer) {
    List<Region> regions = new ArrayList<>();
    List<Keypoint> keypoints = new ArrayList<>();
    List<Skipped> skipped = new ArrayList<>();
    int n = answer.length();
    int segmentStart = 0; // text before this index belongs to an earlier bracket
    int i = 0;
    while (i < n) {
      int open = answer.indexOf('[', i);
      if (open < 0) {
        break;
      }
      int end = open + 1; // the first '[' or ']' after open, or n
      while (end < n && answer.charAt(end) != '[' && answer.charAt(end) != ']') {
        end++;
      }
      String content = answer.substring(open + 1, end);
      boolean closed = end < n && answer.charAt(end) == ']';
      if (!looksLikeCoordinates(content)) {
        i = closed ? end + 1 : end;
        continue;
      }
      if (!closed) {
        skipped.add(skip(open, answer.substring(open, end), "unclosed bracket"));
        i = end;
        continue;
      }
      Subject subject = subjectBefore(answer, open, segmentStart);
      readGroups(content, open + 1, subject, regions, keypoints, skipped);
      segmentStart = end + 1;
      i = end + 1;
    }
    return new ParsedAnswer(answer, regions, keypoints, skipped);
  }

  /** What the text before a bracket says the bracket is about. */
  private record Subject(String label, Optional<CocoKeypoint> keypoint) {}

  private static void readGroups(String content, int contentOffset, Subject subject, List<Region> regions,
      List<Keypoint> keypoints, List<Skipped> skipped) {
    int groupStart = 0;
    while (true) {
      int semi = content.indexOf(';', groupStart);
      int groupEnd = semi < 0 ? content.length() : semi;
      readGroup(content.substring(groupStart, groupEnd), contentOffset + groupStart, subject, regions, keypoints,
          skipped);
      if (semi < 0) {
        return;
      }
      groupStart = semi + 1;
    }
  }

  private static void readGroup(String group, int offset, Subject subject, List<Region> regions,
      List<Keypoint> keypoints, List<Skipped> skipped) {
    if (group.isBlank()) {
      skipped.add(skip(offset, group, "empty coordinate group"));
      return;
    }
    String[] parts = group.split(",", -1);
    if (parts.length != 2 && parts.length != 4) {
      skipped.add(skip(offset, group, "expected 2 numbers (a point) or 4 (a box), got " + parts.length));
      return;
    }
    double[] values = new double[parts.length];
    for (int k = 0; k < parts.length; k++) {
      String part = parts[k].strip();
      if (!isDecimal(part)) {
        skipped.add(skip(offset, group, "not a number: '" + shorten(part) + "'"));
        return;
      }
      double v = Double.parseDouble(part);
      if (!(v >= 0 && v <= 1)) {
        skipped.add(skip(offset, group, "coordinate outside [0, 1]: " + shorten(part)));
        return;
      }
      values[k] = v;
    }
    if (values.length == 4) {
      if (values[2] < values[0] || values[3] < values[1]) {
        skipped.add(skip(offset, group, "box corners out of order (x2 < x1 or y2 < y1)"));
        return;
      }
      regions.add(new Region(subject.label(), new Box(values[0], values[1], values[2], values[3])));
    } else if (subject.keypoint().isPresent()) {
      keypoints.add(new Keypoint(subject.keypoint().get(), new Point(values[0], values[1])));
    } else {
      skipped.add(skip(offset, group, "a point without a COCO keypoint name before it"
          + (subject.label().isEmpty() ? "" : " (got '" + shorten(subject.label()) + "')")));
    }
  }

  /** A bracket is about coordinates when it holds a digit and nothing but number punctuation and spaces. */
  private static boolean looksLikeCoordinates(String content) {
    boolean digit = false;
    for (int k = 0; k < content.length(); k++) {
      char c = content.charAt(k);
      if (c >= '0' && c <= '9') {
        digit = true;
      } else if (c != '.' && c != ',' && c != ';' && c != '-' && c != '+' && c != ' ' && c != '\t') {
        return false;
      }
    }
    return digit;
  }

  /** {@code [+-]?digits[.digits]} or {@code [+-]?.digits}, checked by hand (no regex backtracking). */
  private static boolean isDecimal(String s) {
    int k = 0;
    int n = s.length();
    if (k < n && (s.charAt(k) == '+' || s.charAt(k) == '-')) {
      k++;
    }
    int digits = 0;
    while (k < n && s.charAt(k) >= '0' && s.charAt(k) <= '9') {
      k++;
      digits++;
    }
    if (k < n && s.charAt(k) == '.') {
      k++;
      while (k < n && s.charAt(k) >= '0' && s.charAt(k) <= '9') {
        k++;
        digits++;
      }
    }
    return k == n && digits > 0 && digits <= MAX_DIGITS;
  }

  private static Subject subjectBefore(String answer, int open, int segmentStart) {
    int limit = Math.max(segmentStart, open - MAX_PHRASE_CHARS);
    int j = open;
    while (j > limit && Character.isWhitespace(answer.charAt(j - 1))) {
      j--;
    }
    // <p>label</p> right before the bracket.
    if (j - 4 >= limit && answer.regionMatches(true, j - 4, "</p>", 0, 4)) {
      int tagOpen = lastIndexOfIgnoreCase(answer, "<p>", j - 4, limit);
      if (tagOpen >= 0) {
        List<String> words = words(answer.substring(tagOpen + 3, j - 4));
        int first = 0;
        while (first < words.size() - 1 && isCount(words.get(first))) {
          first++;
        }
        List<String> kept = words.subList(first, words.size());
        return new Subject(String.join(" ", kept), keypointAtEnd(kept));
      }
    }
    int k = j;
    while (k > limit && PHRASE_DELIMITERS.indexOf(answer.charAt(k - 1)) < 0) {
      k--;
    }
    List<String> words = words(answer.substring(k, j));
    Optional<CocoKeypoint> keypoint = keypointAtEnd(words);
    if (keypoint.isPresent()) {
      return new Subject(keypoint.get().spoken(), keypoint);
    }
    int last = words.size();
    while (last > 0 && isStopWord(words.get(last - 1))) {
      last--; // "the dog is located at" → "the dog"
    }
    int first = last;
    while (first > 0 && last - first < MAX_LABEL_WORDS && !isStopWord(words.get(first - 1))) {
      first--;
    }
    return new Subject(String.join(" ", words.subList(first, last)), Optional.empty());
  }

  /** The COCO keypoint the words end with ({@code left eye}, {@code left_eye}), if any. */
  private static Optional<CocoKeypoint> keypointAtEnd(List<String> words) {
    List<String> pieces = new ArrayList<>();
    for (int w = Math.max(0, words.size() - 2); w < words.size(); w++) {
      for (String piece : words.get(w).split("[_-]+")) {
        if (!piece.isEmpty()) {
          pieces.add(piece);
        }
      }
    }
    int size = pieces.size();
    if (size >= 2) {
      Optional<CocoKeypoint> two = CocoKeypoint.fromName(pieces.get(size - 2) + "_" + pieces.get(size - 1));
      if (two.isPresent()) {
        return two;
      }
    }
    return size >= 1 ? CocoKeypoint.fromName(pieces.get(size - 1)) : Optional.empty();
  }

  /** Whitespace-separated words with surrounding quotes, asterisks and similar marks removed. */
  private static List<String> words(String phrase) {
    List<String> words = new ArrayList<>();
    for (String raw : phrase.strip().split("\\s+")) {
      String w = stripMarks(raw);
      if (!w.isEmpty()) {
        words.add(w);
      }
    }
    return words;
  }

  private static String stripMarks(String word) {
    int a = 0;
    int b = word.length();
    while (a < b && !Character.isLetterOrDigit(word.charAt(a))) {
      a++;
    }
    while (b > a && !Character.isLetterOrDigit(word.charAt(b - 1))) {
      b--;
    }
    return word.substring(a, b);
  }

  private static boolean isStopWord(String word) {
    String w = word.toLowerCase(Locale.ROOT);
    return STOP_WORDS.contains(w) || isNumber(w);
  }

  private static boolean isCount(String word) {
    String w = word.toLowerCase(Locale.ROOT);
    return COUNT_WORDS.contains(w) || isNumber(w);
  }

  private static boolean isNumber(String w) {
    if (w.isEmpty()) {
      return false;
    }
    for (int k = 0; k < w.length(); k++) {
      char c = w.charAt(k);
      if ((c < '0' || c > '9') && c != '.' && c != ',') {
        return false;
      }
    }
    return true;
  }

  private static int lastIndexOfIgnoreCase(String s, String needle, int before, int limit) {
    for (int k = before - needle.length(); k >= limit; k--) {
      if (s.regionMatches(true, k, needle, 0, needle.length())) {
        return k;
      }
    }
    return -1;
  }

  private static Skipped skip(int offset, String fragment, String reason) {
    return new Skipped(offset, shorten(fragment), reason);
  }

  private static String shorten(String s) {
    return s.length() <= MAX_FRAGMENT_CHARS ? s : s.substring(0, MAX_FRAGMENT_CHARS) + "…";
  }
}
