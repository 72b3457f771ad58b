package sphinxserve.client.outputs;

import java.util.Objects;

/**
 * A labelled box found in an answer.
 *
 * @param label what the box holds as the answer named it ({@code "people"}, {@code "person"}); empty when the
 *              answer gave no name
 * @param box   the box, normalised to the padded square
 */
public record Region(String label, Box box) {
  /** Checks the components. */
  public Region {
    Objects.requireNonNull(label, "label");
    Objects.requireNonNull(box, "box");
  }
}
