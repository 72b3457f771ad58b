"""The hand-written safetensors (all three dtypes), the q/k row permutation and params.json's MLP fields."""

import os
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import meta_folder  # noqa: E402


class MetaFolderTest(unittest.TestCase):
    def test_safetensors_round_trip(self):
        t = {"a": torch.randn(3, 5), "b.c": torch.randn(7)}
        for dtype, torch_dtype in (("F32", torch.float32), ("BF16", torch.bfloat16), ("F16", torch.float16)):
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "x.safetensors")
                meta_folder.write_safetensors(path, t, dtype)
                with open(path, "rb") as f:
                    self.assertEqual(int.from_bytes(f.read(8), "little") % 8, 0)
                back = meta_folder.read_safetensors(path)
            for k in t:
                self.assertEqual(back[k].dtype, torch_dtype)
                self.assertTrue(torch.equal(back[k], t[k].to(torch_dtype)), (dtype, k))

    def test_rotate_half_to_interleaved(self):
        heads, d = 2, 8
        w = torch.arange(heads * d).float().view(-1, 1)  # row r holds r
        meta = meta_folder.rotate_half_to_interleaved(w, heads).view(-1).tolist()
        # head 0: HF rows (0,4),(1,5),(2,6),(3,7) become Meta pairs (0,1),(2,3),...
        self.assertEqual(meta, [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15])

    def test_ffn_fields(self):
        self.assertEqual(meta_folder.ffn_fields(5120, 13824, 256, None), {"multiple_of": 256})  # LLaMA-2 13B
        self.assertEqual(meta_folder.ffn_fields(8192, 28672, 4096, 1.3),
                         {"multiple_of": 4096, "ffn_dim_multiplier": 1.3})  # LLaMA-2 70B
        self.assertEqual(meta_folder.ffn_fields(128, 352), {"multiple_of": 32})  # SPHINX-tiny
        self.assertEqual(meta_folder.ffn_fields(128, 353), {})


if __name__ == "__main__":
    unittest.main()
