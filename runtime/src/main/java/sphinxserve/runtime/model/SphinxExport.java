package sphinxserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import sphinxserve.runtime.bundle.BundleException;
import sphinxserve.runtime.bundle.BundleFiles;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.TensorProto;
import sphinxserve.runtime.onnx.TensorShapeProto;
import sphinxserve.runtime.onnx.ValueInfoProto;

/**
 * A SPHINX model as {@code tools/sphinx_export} writes it: a LLaMA decoder folder (Meta layout: {@code params.json},
 * {@code consolidated.safetensors}, tokenizer files) plus the image path exported from PyTorch as {@code vision.onnx}
 * (and {@code vision.onnx.data} when large) and {@code sphinx.json}, the view geometry the node computes on the
 * host. The vision graph is taken as given; opening checks it against the bundle contract (docs/BUNDLE.md,
 * "Exported vision graphs"): input {@code pixel_values} float32 {@code [N, 3, view_size, view_size]}, output
 * {@code image_embeds} float32 {@code [N, tokens_per_view, hidden_size]}.
 *
 * @param name the model's name ({@code sphinx.json}'s {@code name})
 * @param decoder the decoder folder
 * @param geometry {@code sphinx.json}
 * @param imagePlaceholderId the id image positions hold in the token sequence
 */
public record SphinxExport(String name, LlamaCheckpoint decoder, Geometry geometry, int imagePlaceholderId) {

  public static final String CONFIG = "sphinx.json";
  public static final String VISION = BundleFiles.VISION;
  public static final String VISION_DATA = "vision.onnx.data";

  /**
   * The host-side view recipe.
   *
   * @param globalViewResize {@code pillow-bicubic} or {@code torch-bicubic} (manifest spelling)
   */
  public record Geometry(int imageSize, int grid, int viewSize, int tokensPerView, List<Integer> padRgb, List<Float> mean,
      List<Float> std, String globalViewResize) {}

  /** Whether {@code dir} is an export folder (it has {@code sphinx.json}). */
  public static boolean isExport(Path dir) {
    return Files.isRegularFile(dir.resolve(CONFIG));
  }

  /** Opens and checks the export folder {@code dir}; {@code maxContext} as for {@link LlamaCheckpoint#open}. */
  public static SphinxExport open(Path dir, int maxContext) {
    Path file = dir.resolve(CONFIG);
    JsonFiles.Fields f = new JsonFiles.Fields(file, JsonFiles.read(file));
    Geometry g = new Geometry(f.requiredInt("image_size"), f.requiredInt("grid"), f.requiredInt("view_size"),
        f.requiredInt("tokens_per_view"), ints(f, "pad_rgb"), floats(f, "mean"), floats(f, "std"),
        f.optionalString("global_view_resize", "pillow-bicubic"));
    if (g.grid() < 1 || g.imageSize() != g.grid() * g.viewSize()) throw f.error("image_size", "must equal grid × view_size");
    if (g.tokensPerView() < 1) throw f.error("tokens_per_view", "must be positive");
    if (!List.of("pillow-bicubic", "torch-bicubic").contains(g.globalViewResize())) {
      throw f.error("global_view_resize", "must be pillow-bicubic or torch-bicubic, got " + g.globalViewResize());
    }
    LlamaCheckpoint decoder = LlamaCheckpoint.open(dir, maxContext);
    String placeholder = f.optionalString("image_placeholder_token", null);
    if (placeholder == null) throw f.error("image_placeholder_token", "is missing");
    int placeholderId = LlamaCheckpoint.tokenId(dir, decoder.tokenizer(), placeholder, CONFIG + " image_placeholder_token");
    int imageTokens = (1 + g.grid() * g.grid()) * g.tokensPerView();
    if (imageTokens >= decoder.shape().maxContextTokens()) {
      throw f.error("tokens_per_view", "makes an image " + imageTokens + " tokens, more than the context of " + decoder.shape().maxContextTokens());
    }
    checkVisionGraph(dir.resolve(VISION), g, decoder.shape().hiddenSize());
    return new SphinxExport(f.optionalString("name", decoder.name()), decoder, g, placeholderId);
  }

  /** The files besides the decoder's that define the model, for the bundle cache's key. */
  public List<Path> extraInputs() {
    List<Path> files = new ArrayList<>(List.of(decoder.directory().resolve(CONFIG), decoder.directory().resolve(VISION)));
    if (Files.isRegularFile(decoder.directory().resolve(VISION_DATA))) files.add(decoder.directory().resolve(VISION_DATA));
    return files;
  }

  /** Inputs and outputs of the exported graph against the contract; reads the graph, not its external weights. */
  static void checkVisionGraph(Path file, Geometry g, int hiddenSize) {
    if (!Files.isRegularFile(file)) throw new BundleException(file + ": missing (an export folder holds the vision graph)");
    ModelProto model;
    try (InputStream in = Files.newInputStream(file)) {
      model = ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new BundleException(file + ": not an ONNX model (" + e.getMessage() + ")", e);
    }
    expect(file, "input", model.getGraph().getInputList(), "pixel_values", new long[] {-1, 3, g.viewSize(), g.viewSize()});
    expect(file, "output", model.getGraph().getOutputList(), "image_embeds", new long[] {-1, g.tokensPerView(), hiddenSize});
  }

  /** {@code name} is among {@code values}, float32, of rank {@code dims.length}; fixed dims equal (−1: any). */
  private static void expect(Path file, String kind, List<ValueInfoProto> values, String name, long[] dims) {
    ValueInfoProto value = values.stream().filter(v -> v.getName().equals(name)).findFirst()
        .orElseThrow(() -> new BundleException(file + ": no " + kind + " named " + name + " (the contract: docs/BUNDLE.md)"));
    var tensor = value.getType().getTensorType();
    if (tensor.getElemType() != TensorProto.DataType.FLOAT_VALUE) {
      throw new BundleException(file + ": " + kind + " " + name + " must be float32, is ONNX type " + tensor.getElemType());
    }
    List<TensorShapeProto.Dimension> shape = tensor.getShape().getDimList();
    if (shape.size() != dims.length) {
      throw new BundleException(file + ": " + kind + " " + name + " must have rank " + dims.length + ", has " + shape.size());
    }
    for (int i = 0; i < dims.length; i++) {
      TensorShapeProto.Dimension d = shape.get(i);
      if (dims[i] >= 0 && d.hasDimValue() && d.getDimValue() != dims[i]) {
        throw new BundleException(file + ": " + kind + " " + name + " dimension " + i + " is " + d.getDimValue() + ", the model needs " + dims[i]);
      }
    }
  }

  private static List<Integer> ints(JsonFiles.Fields f, String field) {
    List<Integer> out = new ArrayList<>();
    for (JsonNode v : array(f, field)) {
      if (!v.canConvertToExactIntegral()) throw f.error(field, "must hold integers");
      out.add(v.asInt());
    }
    return out;
  }

  private static List<Float> floats(JsonFiles.Fields f, String field) {
    List<Float> out = new ArrayList<>();
    for (JsonNode v : array(f, field)) {
      if (!v.isNumber()) throw f.error(field, "must hold numbers");
      out.add((float) v.asDouble());
    }
    return out;
  }

  private static JsonNode array(JsonFiles.Fields f, String field) {
    JsonNode v = f.node().get(field);
    if (v == null || !v.isArray() || v.size() != 3) throw f.error(field, "must be a list of 3 values (R, G, B)");
    return v;
  }
}
