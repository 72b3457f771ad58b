package sphinxserve.runtime.bundle;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.VisionShape;
import sphinxserve.runtime.graph.Weights;

/**
 * A trained model as {@code tools/} exports it: {@code model.json} (shapes, schema trained_model.proto),
 * {@code weights.safetensors} (float32 tensors named as the graph builder names them) and
 * {@code tokenizer.json}. {@link BundleBuilder#build(TrainedModel, Path)} turns it into a bundle.
 *
 * <p>The project's own trained model, SPHINX-tiny, ships inside this module's jar
 * ({@code /sphinxserve/models/sphinx-tiny/}); {@link #embedded} reads it from there, so a node needs no file
 * besides its jar to serve it.
 *
 * @param name the model's name from model.json
 * @param config the parsed model.json
 * @param tensors the weights file
 * @param tokenizerJson the tokenizer file's text
 * @param weightsSha256 SHA-256 of the weights file, lower-case hex: identifies the weights in bundle sources
 *     and in the node's bundle cache
 */
public record TrainedModel(String name, TrainedModelConfig config, SafeTensors tensors, String tokenizerJson,
    String weightsSha256) {

  public static final String CONFIG_FILE = "model.json";
  public static final String WEIGHTS_FILE = "weights.safetensors";
  public static final String TOKENIZER_FILE = "tokenizer.json";

  /** Models shipped in the jar. */
  public static final List<String> EMBEDDED = List.of("sphinx-tiny");

  private static final String RESOURCE_ROOT = "/sphinxserve/models/";

  /** Reads the model in {@code dir}; a {@link BundleException} names the file and what is wrong. */
  public static TrainedModel fromDirectory(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new BundleException(dir + ": not a directory (a trained model is a directory holding " + CONFIG_FILE + ", "
          + WEIGHTS_FILE + " and " + TOKENIZER_FILE + ")");
    }
    return of(dir.toString(), readFile(dir.resolve(CONFIG_FILE)), readFile(dir.resolve(WEIGHTS_FILE)),
        readFile(dir.resolve(TOKENIZER_FILE)));
  }

  /** The model {@code name} shipped in the jar (one of {@link #EMBEDDED}). */
  public static TrainedModel embedded(String name) {
    if (!EMBEDDED.contains(name)) {
      throw new IllegalArgumentException("no embedded trained model '" + name + "'; embedded: " + String.join(", ", EMBEDDED));
    }
    String root = RESOURCE_ROOT + name + "/";
    return of("classpath:" + root, readResource(root + CONFIG_FILE), readResource(root + WEIGHTS_FILE),
        readResource(root + TOKENIZER_FILE));
  }

  private static TrainedModel of(String source, byte[] configJson, byte[] weights, byte[] tokenizer) {
    TrainedModelConfig.Builder config = TrainedModelConfig.newBuilder();
    try {
      JsonFormat.parser().merge(new String(configJson, StandardCharsets.UTF_8), config);
    } catch (InvalidProtocolBufferException e) {
      throw new BundleException(source + "/" + CONFIG_FILE + ": not a valid model config: " + e.getMessage(), e);
    }
    if (config.getName().isBlank()) throw new BundleException(source + "/" + CONFIG_FILE + ": name is missing");
    SafeTensors tensors = SafeTensors.parse(weights, source + "/" + WEIGHTS_FILE);
    return new TrainedModel(config.getName(), config.build(), tensors, new String(tokenizer, StandardCharsets.UTF_8),
        sha256(weights));
  }

  /** The decoder's shape. */
  public DecoderShape decoder() {
    TrainedDecoder d = config.getDecoder();
    try {
      return new DecoderShape(d.getVocabSize(), d.getHiddenSize(), d.getNumLayers(), d.getNumHeads(), d.getNumKvHeads(),
          d.getHeadDim(), d.getIntermediateSize(), d.getMaxContextTokens(), d.getRopeTheta(), d.getRmsNormEps());
    } catch (IllegalArgumentException | ArithmeticException e) {
      throw new BundleException(name + ": decoder: " + e.getMessage(), e);
    }
  }

  /** The vision encoder's shape; its output width is the decoder's hidden size. */
  public VisionShape vision() {
    TrainedVision v = config.getVision();
    try {
      return new VisionShape(v.getViewSize(), v.getPatchSize(), v.getVitWidth(), v.getVitLayers(), v.getVitHeads(),
          v.getConvWidth(), v.getNumQueries(), config.getDecoder().getHiddenSize());
    } catch (IllegalArgumentException | ArithmeticException e) {
      throw new BundleException(name + ": vision: " + e.getMessage(), e);
    }
  }

  public int imageSize() {
    return config.getVision().getImageSize();
  }

  public int grid() {
    return config.getVision().getGrid();
  }

  /** The tensors as graph-builder weights (float32 only). */
  public Weights weights() {
    Weights weights = new Weights(0);
    for (String tensor : tensors.names()) {
      SafeTensors.Tensor t = tensors.get(tensor);
      if (!t.dtype().equals("F32")) throw new BundleException(name + ": weight " + tensor + " is " + t.dtype() + ", not F32");
      weights.put(tensor, t.floats());
    }
    return weights;
  }

  /** Refuses weights the graphs did not use: a misspelt name would otherwise leave a trained tensor out silently. */
  void checkAllUsed(Weights weights) {
    Set<String> unused = new TreeSet<>(weights.names());
    unused.removeAll(weights.used());
    if (!unused.isEmpty()) {
      throw new BundleException(name + ": " + WEIGHTS_FILE + " holds tensors no graph uses: " + String.join(", ", unused));
    }
  }

  private static byte[] readFile(Path file) {
    try {
      return Files.readAllBytes(file);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read (" + e + ")", e);
    }
  }

  private static byte[] readResource(String path) {
    try (InputStream in = TrainedModel.class.getResourceAsStream(path)) {
      if (in == null) throw new BundleException("classpath:" + path + ": missing from the jar");
      return in.readAllBytes();
    } catch (IOException e) {
      throw new BundleException("classpath:" + path + ": cannot be read (" + e + ")", e);
    }
  }

  private static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
