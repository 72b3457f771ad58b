package sphinxserve.runtime.bundle;

import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.TreeMap;
import sphinxserve.runtime.graph.DecoderGraph;
import sphinxserve.runtime.chat.ChatTemplateException;
import sphinxserve.runtime.chat.ChatTurn;
import sphinxserve.runtime.chat.JinjaChatTemplate;
import sphinxserve.runtime.graph.DecoderShape;
import sphinxserve.runtime.graph.ExternalData;
import sphinxserve.runtime.model.ChatTemplateSource;
import sphinxserve.runtime.model.LlamaCheckpoint;
import sphinxserve.runtime.model.LlamaConfig;
import sphinxserve.runtime.model.SphinxExport;
import sphinxserve.runtime.graph.VisionGraph;
import sphinxserve.runtime.graph.VisionShape;
import sphinxserve.runtime.graph.WeightQuantization;
import sphinxserve.runtime.graph.Weights;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.tokenizer.BundleTokenizers;

/**
 * Writes SPHINX-shaped bundles, deterministically (same inputs, byte-identical files): a randomly initialised
 * preset (the real model's shapes and costs, meaningless text; for tests and benchmarks), or a trained model
 * ({@link TrainedModel}: shapes, weights and tokenizer from {@code tools/}; the embedded default).
 *
 * <p>Run as a command: {@code bin/build-bundle --preset tiny --out DIR [--seed N]} or
 * {@code bin/build-bundle --weights DIR --out DIR}.
 */
public final class BundleBuilder {

  /** Bundle format version written and understood. */
  public static final int FORMAT_VERSION = 1;

  /**
   * Changes whenever the builder writes something different for the same inputs (a new manifest field, another
   * graph), so bundle caches keyed by their inputs (the node's {@code --bundle-cache}) rebuild instead of serving a
   * bundle an older builder made. 2: model names, text-only bundles, external data.
   */
  public static final int BUILDER_REVISION = 2;

  /** Special tokens at the start of the vocabulary, in id order. */
  public static final List<String> SPECIAL_TOKENS = BundleTokenizers.DEFAULT_SPECIAL_TOKENS;

  /** SPHINX's conv_v1_2 system text. */
  public static final String SYSTEM = "A chat between a curious human and an artificial intelligence assistant. "
      + "The assistant gives helpful, detailed, and polite answers to the human's questions.\n\n";

  private BundleBuilder() {}

  /** Builds preset {@code preset} with {@code seed} into {@code out} (created if missing); returns the manifest. */
  public static BundleManifest build(BundlePreset preset, long seed, Path out) throws IOException {
    return build(preset, seed, WeightQuantization.NONE, out);
  }

  /** Builds preset {@code preset} with {@code seed} and decoder weights stored as {@code quantization}. */
  public static BundleManifest build(BundlePreset preset, long seed, WeightQuantization quantization, Path out) throws IOException {
    Weights weights = new Weights(seed);
    VisionGraph.initialiseWeights(preset.vision(), weights);
    DecoderGraph.initialiseWeights(preset.decoder(), weights);
    String tokenizerJson = BundleTokenizers.build(preset.decoder().vocabSize(), SPECIAL_TOKENS, seed);
    return write(VisionGraph.build(preset.vision(), weights),
        DecoderGraph.build(preset.decoder(), weights, DecoderGraph.KvAddressing.PAGED, quantization), tokenizerJson,
        manifest(preset.decoder(), preset.vision(), preset.imageSize(), preset.grid(),
            "builder:" + preset.name().toLowerCase() + ":seed=" + seed, quantization).setModelName(preset.name().toLowerCase()),
        out);
  }

  /**
   * Builds the bundle of a trained model (its shapes, weights and tokenizer) into {@code out}: the same graphs
   * as the presets', with the trained tensors as initializers. Every tensor of the weights file must be
   * used, and every weight the graphs need must be there with the right number of values.
   */
  public static BundleManifest build(TrainedModel model, Path out) throws IOException {
    return build(model, WeightQuantization.NONE, out);
  }

  /** Builds a trained model's bundle with its decoder weights stored as {@code quantization}. */
  public static BundleManifest build(TrainedModel model, WeightQuantization quantization, Path out) throws IOException {
    Weights weights = model.weights();
    ModelProto vision;
    ModelProto decoder;
    try {
      vision = VisionGraph.build(model.vision(), weights);
      decoder = DecoderGraph.build(model.decoder(), weights, DecoderGraph.KvAddressing.PAGED, quantization);
    } catch (IllegalArgumentException e) { // a weight missing or of the wrong size
      throw new BundleException(model.name() + ": " + TrainedModel.WEIGHTS_FILE + ": " + e.getMessage(), e);
    }
    model.checkAllUsed(weights);
    return write(vision, decoder, model.tokenizerJson(),
        manifest(model.decoder(), model.vision(), model.imageSize(), model.grid(),
            "trained:" + model.name() + ":weights-sha256=" + model.weightsSha256(), quantization).setModelName(model.name()),
        out);
  }

  /**
   * Builds the text-only bundle of a LLaMA-family checkpoint (Hugging Face or Meta layout): the paged decoder
   * with its weights as external data ({@code decoder.onnx.data}; any size, read one tensor at a time), the
   * folder's tokenizer.json as is, its chat template and EOS ids in the manifest. No vision encoder.
   *
   * @param source recorded in the manifest, e.g. {@code model:TinyLlama:sha256=...}
   */
  public static BundleManifest build(LlamaCheckpoint model, WeightQuantization quantization, String source, Path out) throws IOException {
    ChatTemplateSource template = model.template();
    if (template.jinja() == null) {
      throw new BundleException(model.directory().resolve("tokenizer_config.json") + ": no chat_template (a base model?); "
          + "the node renders conversations with the model's template, so add one");
    }
    checkTemplateRenders(model);
    writeDecoderAndTokenizer(model, quantization, out);
    DecoderShape d = model.shape();
    LlamaConfig config = model.config();
    BundleManifest.Builder manifest = BundleManifest.newBuilder()
        .setFormatVersion(FORMAT_VERSION)
        .setArchitecture("llama")
        .setModelName(model.name())
        .setSource(source)
        .setDtype("float32")
        .setDecoder(decoderConfig(d).setRopeScaling(config.variant().ropeScaling().describe())
            .setTieWordEmbeddings(config.variant().tiedEmbeddings()).setAttentionBias(config.variant().attentionBias())
            .setMlpBias(config.variant().mlpBias()))
        .setTokenizer(tokenizerConfig(config).setAddBosToken(template.addBosToken()))
        .setTemplate(Template.newBuilder().setName("chat_template").setJinja(template.jinja())
            .putAllVariables(template.variables()));
    if (quantization.enabled()) manifest.setQuantization(quantizationOf(d, quantization));
    return finish(manifest, List.of(BundleFiles.DECODER, BundleFiles.DECODER_DATA, BundleFiles.TOKENIZER), out);
  }

  /**
   * Builds the bundle of a SPHINX export folder ({@code tools/sphinx_export}): the paged decoder from its Meta-layout
   * weights (as {@link #build(LlamaCheckpoint, WeightQuantization, String, Path)}), its {@code vision.onnx} (and
   * external data) copied as given, its view geometry, and SPHINX's conv_v1_2 template.
   */
  public static BundleManifest build(SphinxExport model, WeightQuantization quantization, String source, Path out) throws IOException {
    LlamaCheckpoint decoderFolder = model.decoder();
    writeDecoderAndTokenizer(decoderFolder, quantization, out);
    DecoderShape d = decoderFolder.shape();
    LlamaConfig config = decoderFolder.config();
    List<String> files = new java.util.ArrayList<>(List.of(BundleFiles.DECODER, BundleFiles.DECODER_DATA, BundleFiles.VISION, BundleFiles.TOKENIZER));
    Files.copy(decoderFolder.directory().resolve(SphinxExport.VISION), out.resolve(BundleFiles.VISION), StandardCopyOption.REPLACE_EXISTING);
    Path visionData = decoderFolder.directory().resolve(SphinxExport.VISION_DATA);
    if (Files.isRegularFile(visionData)) { // the graph names it by file name, so it keeps its name beside vision.onnx
      Files.copy(visionData, out.resolve(SphinxExport.VISION_DATA), StandardCopyOption.REPLACE_EXISTING);
      files.add(SphinxExport.VISION_DATA);
    }
    SphinxExport.Geometry g = model.geometry();
    BundleManifest.Builder manifest = BundleManifest.newBuilder()
        .setFormatVersion(FORMAT_VERSION)
        .setArchitecture("sphinx-llama")
        .setModelName(model.name())
        .setSource(source)
        .setDtype("float32")
        .setDecoder(decoderConfig(d).setRopeScaling(config.variant().ropeScaling().describe()))
        .setVision(VisionConfig.newBuilder().setFile(BundleFiles.VISION).setImageSize(g.imageSize()).setGrid(g.grid())
            .setViewSize(g.viewSize()).setTokensPerView(g.tokensPerView()).addAllPadRgb(g.padRgb()).addAllMean(g.mean())
            .addAllStd(g.std()).setGlobalViewResize(g.globalViewResize()).putBranches("exported", SphinxExport.VISION + " from tools/sphinx_export"))
        .setTokenizer(tokenizerConfig(config).setImagePlaceholderId(model.imagePlaceholderId()))
        .setTemplate(Template.newBuilder().setName("conv_v1_2").setSystem(SYSTEM).setUserPrefix("### Human: ")
            .setAssistantPrefix("### Assistant:").setTurnSeparator("\n"))
        .addStopStrings("\n###");
    if (quantization.enabled()) manifest.setQuantization(quantizationOf(d, quantization));
    return finish(manifest, files, out);
  }

  /** The tokenizer section of a checkpoint's bundle: its BOS, every EOS id (the first as {@code eos_id}), padding. */
  private static TokenizerConfig.Builder tokenizerConfig(LlamaConfig config) {
    return TokenizerConfig.newBuilder().setFile(BundleFiles.TOKENIZER).setBosId(config.bosId())
        .setEosId(config.eosIds().get(0)).addAllExtraEosIds(config.eosIds().subList(1, config.eosIds().size()))
        .setPadId(config.padId());
  }

  /**
   * Starts {@code out} (the manifest, written last, removed first) with a checkpoint's paged decoder, its weights as
   * external data, and its tokenizer.json.
   */
  private static void writeDecoderAndTokenizer(LlamaCheckpoint model, WeightQuantization quantization, Path out) throws IOException {
    Files.createDirectories(out);
    Files.deleteIfExists(out.resolve(BundleFiles.MANIFEST));
    ModelProto decoder;
    try (ExternalData data = ExternalData.create(out.resolve(BundleFiles.DECODER_DATA))) {
      decoder = DecoderGraph.build(model.shape(), model.config().variant(), model.weights(), DecoderGraph.KvAddressing.PAGED,
          quantization, data);
    }
    writeModel(decoder, out.resolve(BundleFiles.DECODER));
    Files.writeString(out.resolve(BundleFiles.TOKENIZER), model.tokenizerJson(), StandardCharsets.UTF_8);
  }

  /** A template that cannot render a one-question conversation is refused now, not at the first request. */
  private static void checkTemplateRenders(LlamaCheckpoint model) {
    String source = model.directory().resolve("tokenizer_config.json") + ": chat_template";
    try {
      JinjaChatTemplate.compile(source, model.template().jinja(), new java.util.HashMap<>(model.template().variables()))
          .render(List.of(new ChatTurn("user", "Hello")), true);
    } catch (ChatTemplateException e) {
      throw new BundleException(source + " does not render: " + e.getMessage(), e);
    }
  }

  /** Writes the files, then the manifest ({@code partial} plus the files' hashes): a directory without one is no bundle. */
  private static BundleManifest write(ModelProto vision, ModelProto decoder, String tokenizerJson,
      BundleManifest.Builder partial, Path out) throws IOException {
    Files.createDirectories(out);
    Files.deleteIfExists(out.resolve(BundleFiles.MANIFEST));
    writeModel(vision, out.resolve(BundleFiles.VISION));
    writeModel(decoder, out.resolve(BundleFiles.DECODER));
    Files.writeString(out.resolve(BundleFiles.TOKENIZER), tokenizerJson, StandardCharsets.UTF_8);
    return finish(partial, List.of(BundleFiles.DECODER, BundleFiles.VISION, BundleFiles.TOKENIZER), out);
  }

  /** Hashes {@code files}, then writes the manifest last. */
  private static BundleManifest finish(BundleManifest.Builder partial, List<String> files, Path out) throws IOException {
    TreeMap<String, String> hashes = new TreeMap<>();
    for (String file : files) hashes.put(file, BundleFiles.sha256(out.resolve(file)));
    BundleManifest manifest = partial.putAllFiles(hashes).build();
    Files.writeString(out.resolve(BundleFiles.MANIFEST), toJson(manifest), StandardCharsets.UTF_8);
    return manifest;
  }

  private static Quantization.Builder quantizationOf(DecoderShape d, WeightQuantization quantization) {
    return Quantization.newBuilder().setWeights(quantization.dtype())
        .setBlockSize(quantization.blockSize()).setAccuracyLevel(quantization.accuracyLevel())
        .putAllTensors(DecoderGraph.quantizedTensors(d, quantization));
  }

  private static DecoderConfig.Builder decoderConfig(DecoderShape d) {
    return DecoderConfig.newBuilder().setFile(BundleFiles.DECODER).setVocabSize(d.vocabSize())
        .setHiddenSize(d.hiddenSize()).setNumLayers(d.numLayers()).setNumHeads(d.numHeads())
        .setNumKvHeads(d.numKvHeads()).setHeadDim(d.headDim()).setIntermediateSize(d.intermediateSize())
        .setMaxContextTokens(d.maxContextTokens()).setRopeTheta(d.ropeTheta()).setRmsNormEps(d.rmsNormEps())
        .setKvLayout("paged");
  }

  /** The same decoder (same preset and seed, same weights) over a contiguous cache: the benchmark's baseline. */
  public static ModelProto contiguousDecoder(BundlePreset preset, long seed) {
    Weights weights = new Weights(seed);
    DecoderGraph.initialiseWeights(preset.decoder(), weights);
    return DecoderGraph.build(preset.decoder(), weights, DecoderGraph.KvAddressing.CONTIGUOUS);
  }

  static String toJson(BundleManifest manifest) throws IOException {
    return JsonFormat.printer().preservingProtoFieldNames().sortingMapKeys().print(manifest) + "\n";
  }

  private static BundleManifest.Builder manifest(DecoderShape d, VisionShape v, int imageSize, int grid, String source,
      WeightQuantization quantization) {
    BundleManifest.Builder manifest = BundleManifest.newBuilder();
    if (quantization.enabled()) manifest.setQuantization(quantizationOf(d, quantization));
    return manifest
        .setFormatVersion(FORMAT_VERSION)
        .setArchitecture("sphinx-llama")
        .setSource(source)
        .setDtype("float32")
        .setDecoder(decoderConfig(d))
        .setVision(VisionConfig.newBuilder().setFile(BundleFiles.VISION).setImageSize(imageSize)
            .setGrid(grid).setViewSize(v.viewSize()).setTokensPerView(v.tokensPerView())
            .addAllPadRgb(List.of(122, 116, 104))
            .addAllMean(List.of(0.48145466f, 0.4578275f, 0.40821073f))
            .addAllStd(List.of(0.26862954f, 0.26130258f, 0.27577711f))
            .putBranches("vit", "patch " + v.patchSize() + ", width " + v.vitWidth() + ", " + v.vitLayers() + " blocks")
            .putBranches("conv", "patch stem + depthwise 3x3, width " + v.convWidth())
            .putBranches("qformer", v.numQueries() + " learned queries, cross-attention over the ViT tokens"))
        .setTokenizer(TokenizerConfig.newBuilder().setFile(BundleFiles.TOKENIZER)
            .setBosId(SPECIAL_TOKENS.indexOf("<s>")).setEosId(SPECIAL_TOKENS.indexOf("</s>"))
            .setPadId(SPECIAL_TOKENS.indexOf("<pad>")).setImagePlaceholderId(SPECIAL_TOKENS.indexOf("<image>")))
        .setTemplate(Template.newBuilder().setName("conv_v1_2").setSystem(SYSTEM).setUserPrefix("### Human: ")
            .setAssistantPrefix("### Assistant:").setTurnSeparator("\n"))
        .addStopStrings("\n###");
  }

  private static void writeModel(ModelProto model, Path file) throws IOException {
    try (OutputStream out = Files.newOutputStream(file)) {
      model.writeTo(out);
    }
  }
}
