package sphinxserve.runtime.graph;

import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import sphinxserve.runtime.onnx.AttributeProto;
import sphinxserve.runtime.onnx.GraphProto;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.NodeProto;
import sphinxserve.runtime.onnx.OperatorSetIdProto;
import sphinxserve.runtime.onnx.TensorProto;
import sphinxserve.runtime.onnx.TensorShapeProto;
import sphinxserve.runtime.onnx.TypeProto;
import sphinxserve.runtime.onnx.ValueInfoProto;

/**
 * Builds an ONNX graph node by node over the generated ONNX messages (onnx.proto); no hand-written binary.
 *
 * <p>Every operator method returns the name of its (first) output, generated from a per-graph counter, so
 * graphs are written as expressions. Names are deterministic: the same calls produce the same model bytes.
 * Weights are stored as little-endian {@code raw_data}, as the ONNX specification requires.
 */
public final class GraphBuilder {

  /** Default-domain opset the graphs target (LayerNormalization needs 17). */
  public static final int OPSET = 17;

  /** IR version matching opset 17. */
  public static final int IR_VERSION = 8;

  private final GraphProto.Builder graph = GraphProto.newBuilder();
  private final Set<String> names = new HashSet<>();
  private final Map<String, String> int64Constants = new HashMap<>();
  private int counter;
  /** Where initializers of {@link ExternalData#MIN_EXTERNAL_BYTES} or more go; null keeps them in the model. */
  private ExternalData external;

  public GraphBuilder(String name) {
    graph.setName(name);
  }

  /** Writes the large initializers added from now on to {@code data} instead of into the model. */
  public GraphBuilder externalData(ExternalData data) {
    this.external = data;
    return this;
  }

  // ---- graph interface -------------------------------------------------------------------------------

  /** Declares a graph input; {@code dims} are Long/Integer (fixed) or String (symbolic). */
  public String input(String name, TensorProto.DataType type, Object... dims) {
    graph.addInput(valueInfo(claim(name), type, dims));
    return name;
  }

  /** Declares {@code value} a graph output named {@code name} (an Identity when the names differ). */
  public String output(String value, String name, TensorProto.DataType type, Object... dims) {
    if (!value.equals(name)) {
      graph.addNode(node("Identity", List.of(value), List.of(claim(name)), List.of()));
    }
    graph.addOutput(valueInfo(name, type, dims));
    return name;
  }

  /** Adds a float32 weight. */
  public String weight(String name, float[] values, long... dims) {
    checkCount(values.length, dims, name);
    TensorProto.Builder tensor = TensorProto.newBuilder().setName(claim(name)).addAllDims(boxed(dims))
        .setDataType(TensorProto.DataType.FLOAT_VALUE);
    if (external != null && 4L * values.length >= ExternalData.MIN_EXTERNAL_BYTES) {
      graph.addInitializer(externalAt(tensor, external.append(values), 4L * values.length));
      return name;
    }
    ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    bytes.asFloatBuffer().put(values);
    graph.addInitializer(initializer(tensor, bytes.array()));
    return name;
  }

  /** The initializer with {@code raw} as its data: inline, or appended to the external data when large. */
  private TensorProto.Builder initializer(TensorProto.Builder tensor, byte[] raw) {
    if (external == null || raw.length < ExternalData.MIN_EXTERNAL_BYTES) return tensor.setRawData(ByteString.copyFrom(raw));
    return externalAt(tensor, external.append(raw), raw.length);
  }

  /** The initializer pointing at {@code length} bytes at {@code offset} of the external data. */
  private TensorProto.Builder externalAt(TensorProto.Builder tensor, long offset, long length) {
    return tensor.setDataLocation(TensorProto.DataLocation.EXTERNAL)
        .addExternalData(entry("location", external.location()))
        .addExternalData(entry("offset", Long.toString(offset)))
        .addExternalData(entry("length", Long.toString(length)));
  }

  private static sphinxserve.runtime.onnx.StringStringEntryProto entry(String key, String value) {
    return sphinxserve.runtime.onnx.StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
  }

  /** Adds a float32 weight unless one of that name exists already; returns its name either way. */
  public String weightOnce(String name, float[] values, long... dims) {
    return names.contains(name) ? name : weight(name, values, dims);
  }

  /** An int64 constant tensor of shape [values.length] (deduplicated). */
  public String ints(long... values) {
    String key = java.util.Arrays.toString(values);
    return int64Constants.computeIfAbsent(key, k -> {
      String name = fresh("const_i64");
      ByteBuffer bytes = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
      for (long v : values) bytes.putLong(v);
      graph.addInitializer(TensorProto.newBuilder().setName(name).addDims(values.length)
          .setDataType(TensorProto.DataType.INT64_VALUE).setRawData(ByteString.copyFrom(bytes.array())));
      return name;
    });
  }

  /** A scalar (rank-0) constant. */
  public String scalar(float value) {
    String name = fresh("const_f32");
    ByteBuffer bytes = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(value);
    graph.addInitializer(TensorProto.newBuilder().setName(name)
        .setDataType(TensorProto.DataType.FLOAT_VALUE).setRawData(ByteString.copyFrom(bytes.array())));
    return name;
  }

  /** A scalar (rank-0) int64 constant. */
  public String scalar(long value) {
    String name = fresh("const_i64s");
    ByteBuffer bytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value);
    graph.addInitializer(TensorProto.newBuilder().setName(name)
        .setDataType(TensorProto.DataType.INT64_VALUE).setRawData(ByteString.copyFrom(bytes.array())));
    return name;
  }

  // ---- nodes -----------------------------------------------------------------------------------------

  /** Adds a node of the default domain with one output; returns the output's name. */
  public String op(String opType, List<String> inputs, AttributeProto... attributes) {
    return opWithOutputs(opType, inputs, 1, attributes).get(0);
  }

  /** Adds a node with {@code numOutputs} outputs; returns their names. */
  public List<String> opWithOutputs(String opType, List<String> inputs, int numOutputs, AttributeProto... attributes) {
    List<String> outputs = new ArrayList<>(numOutputs);
    for (int i = 0; i < numOutputs; i++) outputs.add(fresh(opType.toLowerCase()));
    graph.addNode(node(opType, inputs, outputs, List.of(attributes)));
    return outputs;
  }

  /**
   * Adds a node of ONNX Runtime's {@code com.microsoft} contrib domain with {@code numOutputs} outputs (an output
   * left unused still gets a name); returns their names.
   */
  public List<String> contribOp(String opType, List<String> inputs, int numOutputs, AttributeProto... attributes) {
    List<String> outputs = new ArrayList<>(numOutputs);
    for (int i = 0; i < numOutputs; i++) outputs.add(fresh(opType.toLowerCase()));
    graph.addNode(node(opType, inputs, outputs, List.of(attributes)).toBuilder().setDomain("com.microsoft").build());
    return outputs;
  }

  /** Adds a node whose single output gets an explicit name (e.g. a graph output written in place). */
  public String opNamed(String outputName, String opType, List<String> inputs, AttributeProto... attributes) {
    graph.addNode(node(opType, inputs, List.of(claim(outputName)), List.of(attributes)));
    return outputName;
  }

  public String op(String opType, String a, AttributeProto... attributes) {
    return op(opType, List.of(a), attributes);
  }

  public String op(String opType, String a, String b, AttributeProto... attributes) {
    return op(opType, List.of(a, b), attributes);
  }

  public String op(String opType, String a, String b, String c, AttributeProto... attributes) {
    return op(opType, List.of(a, b, c), attributes);
  }

  // ---- common compositions -------------------------------------------------------------------------

  public String add(String a, String b) { return op("Add", a, b); }
  public String sub(String a, String b) { return op("Sub", a, b); }
  public String mul(String a, String b) { return op("Mul", a, b); }
  public String div(String a, String b) { return op("Div", a, b); }
  public String matMul(String a, String b) { return op("MatMul", a, b); }

  /**
   * {@code x · w} for {@code w [k, n]} stored block-quantized ({@link WeightQuantization#quantize}) as initializers
   * {@code name} (uint8 codes) and {@code name.scales}, computed by ONNX Runtime's {@code com.microsoft.MatMulNBits}.
   */
  public String matMulNBits(String x, String name, float[] w, int k, int n, WeightQuantization quantization) {
    WeightQuantization.Packed packed = quantization.quantize(w, k, n);
    graph.addInitializer(initializer(TensorProto.newBuilder().setName(claim(name)).addDims(n).addDims(packed.blocks())
        .addDims(packed.blob()).setDataType(TensorProto.DataType.UINT8_VALUE), packed.data()));
    String scales = weight(name + ".scales", packed.scales(), packed.scales().length);
    String y = fresh("matmulnbits");
    graph.addNode(node("MatMulNBits", List.of(x, name, scales), List.of(y), List.of(intAttr("K", k), intAttr("N", n),
        intAttr("bits", quantization.bits()), intAttr("block_size", quantization.blockSize()),
        intAttr("accuracy_level", quantization.accuracyLevel()))).toBuilder().setDomain("com.microsoft").build());
    return y;
  }

  public String reshape(String x, long... shape) { return op("Reshape", x, ints(shape)); }
  public String transpose(String x, long... perm) { return op("Transpose", x, ints("perm", perm)); }
  public String gather(String data, String indices, long axis) { return op("Gather", data, indices, intAttr("axis", axis)); }
  public String concat(long axis, String... parts) { return op("Concat", List.of(parts), intAttr("axis", axis)); }
  public String unsqueeze(String x, long... axes) { return op("Unsqueeze", x, ints(axes)); }

  /** {@code x · w + b} with {@code w} stored {@code [in, out]}. */
  public String linear(String x, String w, String b) {
    String y = matMul(x, w);
    return b == null ? y : add(y, b);
  }

  /** Exact GELU, {@code x · ½(1 + erf(x/√2))}; ONNX Runtime fuses it into its Gelu kernel. */
  public String gelu(String x) {
    String erf = op("Erf", div(x, scalar((float) Math.sqrt(2.0))));
    return mul(mul(x, add(erf, scalar(1f))), scalar(0.5f));
  }

  /** SiLU, {@code x · sigmoid(x)}. */
  public String silu(String x) {
    return mul(x, op("Sigmoid", x));
  }

  /** LayerNormalization over the last axis. */
  public String layerNorm(String x, String scale, String bias, float eps) {
    return op("LayerNormalization", List.of(x, scale, bias), intAttr("axis", -1), floatAttr("epsilon", eps));
  }

  /**
   * LLaMA RMSNorm over the last axis, {@code x / √(mean(x²) + eps) · w}: ONNX Runtime's one-kernel
   * {@code SimplifiedLayerNormalization} (a contrib op registered in the default domain), where the same sum as
   * six elementwise nodes cost a node dispatch each per layer at batch 1.
   */
  public String rmsNorm(String x, String weight, float eps) {
    return op("SimplifiedLayerNormalization", List.of(x, weight), intAttr("axis", -1), floatAttr("epsilon", eps));
  }

  /**
   * The residual add and the RMSNorm after it in one kernel ({@code com.microsoft.SkipSimplifiedLayerNormalization}):
   * returns {@code [rmsNorm(x + skip) · w, x + skip]}.
   */
  public List<String> addRmsNorm(String x, String skip, String weight, float eps) {
    List<String> out = contribOp("SkipSimplifiedLayerNormalization", List.of(x, skip, weight), 4, floatAttr("epsilon", eps));
    return List.of(out.get(0), out.get(3));
  }

  /** The dynamic size of {@code x}'s axis {@code axis} as a 1-element int64 tensor. */
  public String dim(String x, long axis) {
    return gather(op("Shape", x), ints(axis), 0);
  }

  // ---- attributes --------------------------------------------------------------------------------------

  public static AttributeProto intAttr(String name, long value) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(value).build();
  }

  public static AttributeProto floatAttr(String name, float value) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF(value).build();
  }

  public static AttributeProto ints(String name, long... values) {
    AttributeProto.Builder b = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
    for (long v : values) b.addInts(v);
    return b.build();
  }

  /** A scalar float constant tensor as a {@code value} attribute (for ConstantOfShape). */
  public static AttributeProto floatTensorAttr(String name, float value) {
    ByteBuffer bytes = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(value);
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.TENSOR)
        .setT(TensorProto.newBuilder().addDims(1).setDataType(TensorProto.DataType.FLOAT_VALUE)
            .setRawData(ByteString.copyFrom(bytes.array())))
        .build();
  }

  // ---- output ----------------------------------------------------------------------------------------

  /** The finished model: default opset {@value #OPSET} plus the {@code com.microsoft} domain. */
  public ModelProto build(String docString, Map<String, String> metadata) {
    ModelProto.Builder model = ModelProto.newBuilder()
        .setIrVersion(IR_VERSION)
        .setProducerName("sphinx-serve")
        .setProducerVersion("1")
        .setDocString(docString)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("com.microsoft").setVersion(1))
        .setGraph(graph);
    metadata.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> model.addMetadataProps(
        sphinxserve.runtime.onnx.StringStringEntryProto.newBuilder().setKey(e.getKey()).setValue(e.getValue())));
    return model.build();
  }

  // ---- internals -------------------------------------------------------------------------------------

  private String fresh(String prefix) {
    return claim(prefix + "_" + (counter++));
  }

  private String claim(String name) {
    if (!names.add(name)) throw new IllegalStateException("graph value named twice: " + name);
    return name;
  }

  private static NodeProto node(String opType, List<String> inputs, List<String> outputs, List<AttributeProto> attributes) {
    return NodeProto.newBuilder().setOpType(opType).setName(outputs.get(0) + "_node").addAllInput(inputs)
        .addAllOutput(outputs).addAllAttribute(attributes).build();
  }

  private static ValueInfoProto valueInfo(String name, TensorProto.DataType type, Object... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (Object d : dims) {
      TensorShapeProto.Dimension.Builder dim = TensorShapeProto.Dimension.newBuilder();
      switch (d) {
        case Integer i -> dim.setDimValue(i);
        case Long l -> dim.setDimValue(l);
        case String s -> dim.setDimParam(s);
        default -> throw new IllegalArgumentException("dimension " + d);
      }
      shape.addDim(dim);
    }
    return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
        TypeProto.Tensor.newBuilder().setElemType(type.getNumber()).setShape(shape))).build();
  }

  private static void checkCount(int count, long[] dims, String name) {
    long expected = 1;
    for (long d : dims) expected *= d;
    if (expected != count) throw new IllegalArgumentException(name + ": " + count + " values for shape " + java.util.Arrays.toString(dims));
  }

  private static List<Long> boxed(long[] dims) {
    List<Long> out = new ArrayList<>(dims.length);
    for (long d : dims) out.add(d);
    return out;
  }
}
