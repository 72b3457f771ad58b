package sphinxserve.client.outputs;

import com.google.protobuf.ListValue;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The shared parser test vectors, {@code shared/testdata/sphinx_outputs.json}: answers of the real SPHINX-v2-1k with
 * the regions and keypoints a correct parser extracts. Found by the {@code sphinx.testdata} system property or by
 * walking up from the working directory to a {@code shared/testdata} folder.
 */
final class TestVectors {
  private TestVectors() {}

  static Path file() {
    String property = System.getProperty("sphinx.testdata");
    if (property != null) {
      return Path.of(property, "sphinx_outputs.json");
    }
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve("shared/testdata/sphinx_outputs.json");
      if (Files.isRegularFile(candidate)) {
        return candidate;
      }
    }
    throw new IllegalStateException("shared/testdata/sphinx_outputs.json not found above "
        + Path.of("").toAbsolutePath() + "; set -Dsphinx.testdata=DIR");
  }

  static List<Value> cases() throws IOException {
    ListValue.Builder list = ListValue.newBuilder();
    JsonFormat.parser().merge(Files.readString(file()), list);
    return list.getValuesList();
  }
}
