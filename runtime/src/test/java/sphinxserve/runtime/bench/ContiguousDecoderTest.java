package sphinxserve.runtime.bench;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static sphinxserve.runtime.testing.Numerics.relativeError;

import ai.onnxruntime.OrtSession;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import sphinxserve.api.SequenceStep;
import sphinxserve.api.StepOutput;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.runtime.engine.Sessions;
import sphinxserve.runtime.testing.TestBundles;

/** The benchmark's contiguous baseline is the same model as the paged decoder, or its ratio means nothing. */
class ContiguousDecoderTest {

  @Test
  void decodeStep_givesThePagedDecodersLogitsForTheSameHistory() throws Exception {
    Bundle bundle = TestBundles.get(BundlePreset.TEST);
    int batch = 3;
    int capacity = 40;
    int steps = 5;
    byte[] model = BundleBuilder.contiguousDecoder(BundlePreset.TEST, TestBundles.SEED).toByteArray();
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(bundle.spec(), 16, 32));
        OnnxModelRuntime paged = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage);
        OrtSession session = Sessions.open(sphinxserve.runtime.engine.OrtEnvironments.get(), "contiguous", RuntimeOptions.cpu(), model);
        ContiguousDecoder contiguous = new ContiguousDecoder(session, BundlePreset.TEST.decoder(), batch, capacity)) {
      float[] row = new float[bundle.spec().vocabSize()];
      // Both caches start empty (zeros); both models decode the same tokens at positions 0..steps-1.
      for (int position = 0; position < steps; position++) {
        contiguous.decodeStep(position, 100 + position);
        List<SequenceStep> batchSteps = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
          batchSteps.add(new SequenceStep(new int[] {100 + position + b}, position, new int[] {b * 2, b * 2 + 1}, null, 0, true));
        }
        StepOutput out = paged.step(batchSteps);
        for (int b = 0; b < batch; b++) {
          out.copyRow(b, row);
          double error = relativeError(row, contiguous.logits(b));
          assertTrue(error < 1e-5, "position " + position + ", sequence " + b + ": " + error);
        }
      }
    }
  }

}
