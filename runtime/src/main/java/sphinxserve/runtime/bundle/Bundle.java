package sphinxserve.runtime.bundle;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import sphinxserve.api.ChatTemplate;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SpecialTokens;
import sphinxserve.api.VisionSpec;

/**
 * A bundle directory, opened and checked: the manifest parses against its schema (manifest.proto), its
 * numbers are consistent, and every file exists and has the SHA-256 the manifest records. The graphs
 * themselves are checked against the manifest when a runtime opens them.
 *
 * @param directory where the files are
 * @param manifest the parsed {@code bundle.json}
 * @param spec the model as the scheduler and server see it
 */
public record Bundle(Path directory, BundleManifest manifest, ModelSpec spec) {

  /** Opens and checks the bundle in {@code directory}; a {@link BundleException} names what is wrong. */
  public static Bundle open(Path directory) {
    if (!Files.isDirectory(directory)) {
      throw new BundleException(directory + ": not a directory (a bundle is a directory holding " + BundleFiles.MANIFEST + ")");
    }
    BundleManifest manifest = readManifest(directory.resolve(BundleFiles.MANIFEST));
    checkConsistent(manifest);
    checkFiles(directory, manifest);
    return new Bundle(directory, manifest, toSpec(manifest));
  }

  public Path decoderFile() {
    return directory.resolve(manifest.getDecoder().getFile());
  }

  /** The vision encoder's file; only for a bundle that {@link ModelSpec#acceptsImages accepts images}. */
  public Path visionFile() {
    if (!manifest.hasVision()) throw new IllegalStateException("a text-only bundle has no vision encoder");
    return directory.resolve(manifest.getVision().getFile());
  }

  public Path tokenizerFile() {
    return directory.resolve(manifest.getTokenizer().getFile());
  }

  /**
   * Bytes of every file the manifest lists (the graphs with any external data, and the tokenizer): what opening
   * the model reads into memory, as near as the files tell.
   */
  public long bytesOnDisk() {
    long bytes = 0;
    for (String file : manifest.getFilesMap().keySet()) {
      try {
        bytes += Files.size(directory.resolve(file));
      } catch (IOException e) {
        throw new BundleException(directory.resolve(file) + ": cannot be read: " + e.getMessage(), e);
      }
    }
    return bytes;
  }

  private static BundleManifest readManifest(Path file) {
    if (!Files.isRegularFile(file)) {
      throw new BundleException(file + ": missing (every bundle has a " + BundleFiles.MANIFEST + ")");
    }
    BundleManifest.Builder builder = BundleManifest.newBuilder();
    try {
      JsonFormat.parser().merge(Files.readString(file, StandardCharsets.UTF_8), builder);
    } catch (InvalidProtocolBufferException e) {
      throw new BundleException(file + ": not a valid manifest: " + e.getMessage(), e);
    } catch (IOException e) {
      throw new BundleException(file + ": cannot be read: " + e.getMessage(), e);
    }
    BundleManifest manifest = builder.build();
    if (manifest.getFormatVersion() != BundleBuilder.FORMAT_VERSION) {
      throw new BundleException(file + ": format_version " + manifest.getFormatVersion() + " is not supported (this node reads " + BundleBuilder.FORMAT_VERSION + ")");
    }
    if (!"float32".equals(manifest.getDtype())) {
      throw new BundleException(file + ": dtype '" + manifest.getDtype() + "' is not supported on this runtime (float32)");
    }
    return manifest;
  }

  private static void checkConsistent(BundleManifest m) {
    DecoderConfig d = m.getDecoder();
    require(d.getVocabSize() > 0 && d.getHiddenSize() > 0 && d.getNumLayers() > 0 && d.getHeadDim() > 0, "decoder sizes must be positive");
    require(d.getNumKvHeads() > 0 && d.getNumHeads() % d.getNumKvHeads() == 0, "decoder.num_heads must be a multiple of decoder.num_kv_heads");
    require("paged".equals(d.getKvLayout()), "decoder.kv_layout must be \"paged\", got \"" + d.getKvLayout() + "\"");
    require(d.getMaxContextTokens() > 0, "decoder.max_context_tokens must be positive");
    if (m.hasVision()) {
      VisionConfig v = m.getVision();
      require(v.getGrid() > 0 && v.getImageSize() == v.getGrid() * v.getViewSize(), "vision.image_size must equal vision.grid × vision.view_size");
      require(v.getTokensPerView() > 0, "vision.tokens_per_view must be positive");
      require(v.getPadRgbCount() == 3 && v.getMeanCount() == 3 && v.getStdCount() == 3, "vision.pad_rgb, vision.mean and vision.std need 3 values each");
      globalViewResize(v.getGlobalViewResize());
      int imageTokens = (1 + v.getGrid() * v.getGrid()) * v.getTokensPerView();
      require(imageTokens < d.getMaxContextTokens(), "an image (" + imageTokens + " tokens) does not fit decoder.max_context_tokens");
    }
    if (m.hasQuantization()) {
      Quantization q = m.getQuantization();
      require(q.getWeights().equals("int4") || q.getWeights().equals("int8"), "quantization.weights must be \"int4\" or \"int8\", got \"" + q.getWeights() + "\"");
      require(q.getBlockSize() >= 16 && Integer.bitCount(q.getBlockSize()) == 1, "quantization.block_size must be a power of two >= 16");
      require(!q.getTensorsMap().isEmpty(), "quantization.tensors must name the quantized tensors");
    }
    TokenizerConfig t = m.getTokenizer();
    java.util.List<Integer> ids = new java.util.ArrayList<>(java.util.List.of(t.getBosId(), t.getEosId(), t.getPadId()));
    if (m.hasVision()) ids.add(t.getImagePlaceholderId());
    ids.addAll(t.getExtraEosIdsList());
    for (int id : ids) {
      require(id >= 0 && id < d.getVocabSize(), "tokenizer special token id " + id + " is outside the vocabulary");
    }
  }

  private static void checkFiles(Path directory, BundleManifest m) {
    List<String> required = m.hasVision()
        ? List.of(m.getDecoder().getFile(), m.getVision().getFile(), m.getTokenizer().getFile())
        : List.of(m.getDecoder().getFile(), m.getTokenizer().getFile());
    for (String file : required) {
      if (!m.getFilesMap().containsKey(file)) {
        throw new BundleException(BundleFiles.MANIFEST + ": files has no SHA-256 for " + file);
      }
    }
    for (Map.Entry<String, String> entry : m.getFilesMap().entrySet()) {
      Path file = directory.resolve(entry.getKey());
      if (!Files.isRegularFile(file)) {
        throw new BundleException(file + ": missing (listed in " + BundleFiles.MANIFEST + ")");
      }
      String actual;
      try {
        actual = BundleFiles.sha256(file);
      } catch (IOException e) {
        throw new BundleException(file + ": cannot be read: " + e.getMessage(), e);
      }
      if (!actual.equals(entry.getValue())) {
        throw new BundleException(file + ": corrupt or replaced: SHA-256 is " + actual + " but " + BundleFiles.MANIFEST + " records " + entry.getValue());
      }
    }
  }

  private static ModelSpec toSpec(BundleManifest m) {
    DecoderConfig d = m.getDecoder();
    VisionConfig v = m.getVision();
    Template t = m.getTemplate();
    TokenizerConfig tok = m.getTokenizer();
    VisionSpec vision = !m.hasVision() ? null : new VisionSpec(v.getImageSize(), v.getGrid(), v.getViewSize(), v.getTokensPerView(),
        v.getPadRgbList().stream().mapToInt(Integer::intValue).toArray(), toArray(v.getMeanList()), toArray(v.getStdList()),
        globalViewResize(v.getGlobalViewResize()));
    java.util.List<Integer> eosIds = new java.util.ArrayList<>(java.util.List.of(tok.getEosId()));
    eosIds.addAll(tok.getExtraEosIdsList());
    return new ModelSpec(BundleFiles.bundleId(m.getFilesMap()), m.getArchitecture(), d.getVocabSize(), d.getHiddenSize(),
        d.getNumLayers(), d.getNumHeads(), d.getNumKvHeads(), d.getHeadDim(), d.getMaxContextTokens(), vision,
        new ChatTemplate(t.getSystem(), t.getUserPrefix(), t.getAssistantPrefix(), t.getTurnSeparator(),
            t.getJinja().isEmpty() ? null : t.getJinja(), t.getVariablesMap()),
        new SpecialTokens(tok.getBosId(), tok.getEosId(), tok.getPadId(), m.hasVision() ? tok.getImagePlaceholderId() : -1, eosIds,
            !tok.hasAddBosToken() || tok.getAddBosToken()),
        m.getStopStringsList());
  }

  /** The manifest's recipe name; empty is the original, Pillow's bicubic. */
  static sphinxserve.api.GlobalViewResize globalViewResize(String name) {
    return switch (name) {
      case "", "pillow-bicubic" -> sphinxserve.api.GlobalViewResize.PILLOW_BICUBIC;
      case "torch-bicubic" -> sphinxserve.api.GlobalViewResize.TORCH_BICUBIC;
      default -> throw new BundleException(BundleFiles.MANIFEST + ": vision.global_view_resize must be \"pillow-bicubic\" or \"torch-bicubic\", got \"" + name + "\"");
    };
  }

  private static float[] toArray(List<Float> values) {
    float[] out = new float[values.size()];
    for (int i = 0; i < out.length; i++) out[i] = values.get(i);
    return out;
  }

  private static void require(boolean condition, String message) {
    if (!condition) throw new BundleException(BundleFiles.MANIFEST + ": " + message);
  }
}
