"""Merging of fairscale model-parallel shards, on toy llama_ens5-shaped state dicts.

  /usr/bin/python3 -m unittest discover -s tools/sphinx_export -p 'test_*.py'
"""

import os
import sys
import tempfile
import unittest

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shards  # noqa: E402

DIM, HIDDEN, VOCAB, LAYERS = 8, 24, 12, 2


def toy_state(seed=0):
    """Names and shapes as llama_ens5's Transformer has them (without the "llma." prefix), small."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    s = {"tok_embeddings.weight": r(VOCAB, DIM), "norm.weight": r(DIM), "output.weight": r(VOCAB, DIM)}
    for l in range(LAYERS):
        p = "layers.%d." % l
        for m in "qkv":
            s[p + "attention.w%s.weight" % m] = r(DIM, DIM)
        s[p + "attention.wo.weight"] = r(DIM, DIM)
        s[p + "feed_forward.w1.weight"] = r(HIDDEN, DIM)
        s[p + "feed_forward.w3.weight"] = r(HIDDEN, DIM)
        s[p + "feed_forward.w2.weight"] = r(DIM, HIDDEN)
        s[p + "attention_norm.weight"] = r(DIM)
        s[p + "ffn_norm.weight"] = r(DIM)
    # the visual side: replicated on every rank
    s["start_img"] = r(1, 1, DIM)
    s["end_img"] = r(1, 1, DIM)
    s["qformer_proj.0.weight"] = r(DIM, 6)
    s["qformer_proj.0.bias"] = r(DIM)
    s["qformer_proj.1.weight"] = r(DIM)
    s["visual_proj.0.weight"] = r(DIM, 10)
    s["visual_proj.1.bias"] = r(DIM)
    s["clip.visual.conv1.weight"] = r(4, 3, 2, 2)
    s["qformer.qformer.encoder.layer.0.output.dense.weight"] = r(6, 6)  # "output" inside an encoder: replicated
    s["dinov2_vitg14.blocks.0.attn.qkv.weight"] = r(9, 3)
    return s


class SplitDimTest(unittest.TestCase):
    def test_rules(self):
        self.assertEqual(shards.split_dim("layers.3.attention.wq.weight"), 0)
        self.assertEqual(shards.split_dim("layers.3.attention.wk.weight"), 0)
        self.assertEqual(shards.split_dim("layers.3.attention.wv.weight"), 0)
        self.assertEqual(shards.split_dim("layers.3.feed_forward.w1.weight"), 0)
        self.assertEqual(shards.split_dim("layers.3.feed_forward.w3.weight"), 0)
        self.assertEqual(shards.split_dim("output.weight"), 0)
        self.assertEqual(shards.split_dim("layers.0.attention.wq.bias"), 0)  # column-parallel bias: split
        self.assertEqual(shards.split_dim("layers.3.attention.wo.weight"), 1)
        self.assertEqual(shards.split_dim("layers.3.feed_forward.w2.weight"), 1)
        self.assertIsNone(shards.split_dim("layers.3.attention.wo.bias"))  # row-parallel bias: replicated
        self.assertEqual(shards.split_dim("tok_embeddings.weight"), 1)
        for name in ["norm.weight", "layers.1.attention_norm.weight", "layers.1.ffn_norm.weight", "start_img",
                     "visual_proj.0.weight", "qformer_proj.0.weight", "clip.visual.conv1.weight",
                     "qformer.qformer.encoder.layer.0.output.dense.weight", "openclip_convnext_xxl.head.norm.weight"]:
            self.assertIsNone(shards.split_dim(name), name)


class MergeTest(unittest.TestCase):
    def test_round_trip(self):
        state = toy_state()
        for ranks in (1, 2, 4):
            merged = shards.merge(shards.split(state, ranks))
            self.assertEqual(list(merged.keys()), list(state.keys()))
            for k in state:
                self.assertTrue(torch.equal(merged[k], state[k]), (ranks, k))

    def test_shard_shapes_are_fairscales(self):
        parts = shards.split(toy_state(), 2)
        p = shards.PREFIX
        self.assertEqual(tuple(parts[0][p + "tok_embeddings.weight"].shape), (VOCAB, DIM // 2))
        self.assertEqual(tuple(parts[0][p + "layers.0.attention.wq.weight"].shape), (DIM // 2, DIM))
        self.assertEqual(tuple(parts[0][p + "layers.0.attention.wo.weight"].shape), (DIM, DIM // 2))
        self.assertEqual(tuple(parts[0][p + "layers.0.feed_forward.w2.weight"].shape), (DIM, HIDDEN // 2))
        self.assertEqual(tuple(parts[0][p + "output.weight"].shape), (VOCAB // 2, DIM))
        self.assertEqual(tuple(parts[1][p + "visual_proj.0.weight"].shape), (DIM, 10))

    def test_merged_computes_what_the_ranks_compute(self):
        """The parallel forward (each rank: its heads / its hidden slice, partial sums added) equals the
        merged layer's: the concatenation order is the rank order fairscale gathers in."""
        state, ranks = toy_state(1), 2
        parts = shards.split(state, ranks)
        x = torch.randn(3, DIM)
        p = shards.PREFIX + "layers.0.feed_forward."
        partial = sum((F.silu(x @ r[p + "w1.weight"].T) * (x @ r[p + "w3.weight"].T)) @ r[p + "w2.weight"].T
                      for r in parts)
        ids = torch.tensor([0, 5, 11])
        gathered = torch.cat([F.embedding(ids, r[shards.PREFIX + "tok_embeddings.weight"]) for r in parts], dim=-1)
        merged = shards.merge(parts)  # empties parts
        m = "layers.0.feed_forward."
        full = (F.silu(x @ merged[m + "w1.weight"].T) * (x @ merged[m + "w3.weight"].T)) @ merged[m + "w2.weight"].T
        self.assertTrue(torch.allclose(partial, full, atol=1e-5))
        self.assertTrue(torch.equal(gathered, F.embedding(ids, merged["tok_embeddings.weight"])))

    def test_unequal_replicas_refused(self):
        parts = shards.split(toy_state(), 2)
        parts[1][shards.PREFIX + "visual_proj.0.weight"][0, 0] += 1
        with self.assertRaisesRegex(ValueError, "visual_proj.0.weight"):
            shards.merge(parts)

    def test_different_names_refused(self):
        parts = shards.split(toy_state(), 2)
        del parts[1][shards.PREFIX + "norm.weight"]
        with self.assertRaisesRegex(ValueError, "norm.weight"):
            shards.merge(parts)


class FilesTest(unittest.TestCase):
    def test_folder_with_model_wrapper(self):
        state = toy_state(2)
        with tempfile.TemporaryDirectory() as d:
            for r, part in enumerate(shards.split(state, 2)):
                torch.save({"model": part}, os.path.join(d, "consolidated.%02d-of-02.model.pth" % r))
            merged = shards.load_merged(d)
        for k in state:
            self.assertTrue(torch.equal(merged[k], state[k]), k)

    def test_missing_shard_refused(self):
        with tempfile.TemporaryDirectory() as d:
            torch.save({}, os.path.join(d, "consolidated.00-of-02.model.pth"))
            with self.assertRaisesRegex(ValueError, r"missing shard\(s\) \[1\]"):
                shards.shard_paths(d)


if __name__ == "__main__":
    unittest.main()
