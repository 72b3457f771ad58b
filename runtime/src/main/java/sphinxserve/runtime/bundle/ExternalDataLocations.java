package sphinxserve.runtime.bundle;

import com.google.protobuf.CodedInputStream;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import sphinxserve.runtime.graph.ExternalData;
import sphinxserve.runtime.onnx.AttributeProto;
import sphinxserve.runtime.onnx.FunctionProto;
import sphinxserve.runtime.onnx.GraphProto;
import sphinxserve.runtime.onnx.ModelProto;
import sphinxserve.runtime.onnx.NodeProto;
import sphinxserve.runtime.onnx.SparseTensorProto;
import sphinxserve.runtime.onnx.TensorProto;

/**
 * Checks, before ONNX Runtime sees a graph, that every tensor it keeps outside the file names a data file inside the
 * bundle's folder ({@link ExternalData.Slice#fileIn}): a bundle is downloaded or copied from elsewhere, and ONNX
 * Runtime opens each {@code location} as it stands, so a crafted graph could otherwise read any file the node may
 * (an absolute path, {@code ../..}, or a link out of the folder) into its weights.
 *
 * <p>Every tensor counts, wherever it sits: initializers, sparse initializers, attribute tensors (a Constant node's
 * value), in subgraphs and functions too. The file is memory-mapped and parsed with aliasing, so inline weights
 * are not copied into the heap.
 */
final class ExternalDataLocations {

  private ExternalDataLocations() {}

  /** Checks the graph {@code model}; a {@link BundleException} names the file, the initializer and the location. */
  static void check(Path model) {
    ModelProto parsed = parse(model);
    Path folder = model.toAbsolutePath().getParent();
    try {
      for (FunctionProto f : parsed.getFunctionsList()) {
        for (NodeProto node : f.getNodeList()) checkNode(node, folder);
        for (AttributeProto a : f.getAttributeProtoList()) checkAttribute(a, folder);
      }
      checkGraph(parsed.getGraph(), folder);
    } catch (IllegalArgumentException e) {
      throw new BundleException(model + ": " + e.getMessage(), e);
    } catch (IOException e) {
      throw new BundleException(model + ": " + e.getMessage(), e);
    }
  }

  private static ModelProto parse(Path model) {
    try (FileChannel channel = FileChannel.open(model, StandardOpenOption.READ)) {
      if (channel.size() > Integer.MAX_VALUE) {
        throw new BundleException(model + ": " + channel.size() + " bytes; an ONNX graph file holds at most 2 GiB (larger weights go to external data)");
      }
      MappedByteBuffer bytes = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size());
      CodedInputStream in = CodedInputStream.newInstance(bytes);
      in.enableAliasing(true); // raw_data stays a view of the mapping
      in.setSizeLimit(Integer.MAX_VALUE);
      return ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new BundleException(model + ": not a readable ONNX graph: " + e.getMessage(), e);
    }
  }

  private static void checkGraph(GraphProto graph, Path folder) throws IOException {
    for (TensorProto t : graph.getInitializerList()) checkTensor(t, folder);
    for (SparseTensorProto s : graph.getSparseInitializerList()) checkSparse(s, folder);
    for (NodeProto node : graph.getNodeList()) checkNode(node, folder);
  }

  private static void checkNode(NodeProto node, Path folder) throws IOException {
    for (AttributeProto a : node.getAttributeList()) checkAttribute(a, folder);
  }

  private static void checkAttribute(AttributeProto a, Path folder) throws IOException {
    if (a.hasT()) checkTensor(a.getT(), folder);
    for (TensorProto t : a.getTensorsList()) checkTensor(t, folder);
    if (a.hasSparseTensor()) checkSparse(a.getSparseTensor(), folder);
    for (SparseTensorProto s : a.getSparseTensorsList()) checkSparse(s, folder);
    if (a.hasG()) checkGraph(a.getG(), folder);
    for (GraphProto g : a.getGraphsList()) checkGraph(g, folder);
  }

  private static void checkSparse(SparseTensorProto s, Path folder) throws IOException {
    if (s.hasValues()) checkTensor(s.getValues(), folder);
    if (s.hasIndices()) checkTensor(s.getIndices(), folder);
  }

  private static void checkTensor(TensorProto t, Path folder) throws IOException {
    ExternalData.Slice slice = ExternalData.sliceOf(t);
    if (slice != null) slice.fileIn(folder);
  }
}
