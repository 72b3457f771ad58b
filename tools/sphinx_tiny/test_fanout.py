"""The fan-out decoding equals decode() of each prefix + suffix; coordinate tokens round-trip.

  cd tools/sphinx_tiny && /usr/bin/python3 -m unittest test_fanout test_resume
"""

import unittest

import torch

import data
import tokenizer
from model import Config, SphinxTiny


class FanoutTest(unittest.TestCase):
    def test_suffix_logits_equal_whole_sequence_logits(self):
        cfg = Config(vocab_size=40, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                     intermediate_size=48, max_context_tokens=64)
        torch.manual_seed(0)
        model = SphinxTiny(cfg, seed=3)
        prefixes = torch.randint(5, 40, (2, 10))
        image = torch.randn(2, 4, 32)
        suffixes = torch.randint(5, 40, (3, 7))
        owner = torch.tensor([1, 0, 1])
        cache = model.prefix_cache(prefixes, image, image_start=2)
        logits, (probs,) = model.decode_suffixes(cache, owner, suffixes, capture=((1, 3),))
        for n in range(3):
            whole = torch.cat([prefixes[owner[n]], suffixes[n]]).view(1, -1)
            expected, (expected_probs,) = model.decode(whole, image[owner[n]:owner[n] + 1], image_start=2, capture=((1, 3),))
            torch.testing.assert_close(logits[n], expected[0, 10:], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(probs[n], expected_probs[0, 10:, :10], rtol=1e-5, atol=1e-6)

    def test_coordinates_are_single_tokens_and_decode_to_the_same_text(self):
        tok = tokenizer.train(["There is one circle[0.12,0.40,0.31,0.59] in the image.\n###"] * 20, 30)
        text = " There are two circles[0.00,0.40,0.31,1.00;0.5,0.10,0.99,0.19] in the image.\n###"
        ids = tok.encode(text)
        self.assertEqual(tok.decode(ids), text)
        values = [tok.coordinate_value(i) for i in ids if tok.coordinate_value(i) is not None]
        self.assertEqual(values, [0.0, 0.4, 0.31, 1.0, 0.1, 0.99, 0.19])  # "0.5" is not a coordinate token


class SegmentationTest(unittest.TestCase):
    def test_prefix_and_suffix_ids_equal_the_whole_text_ids(self):
        texts = [data.full_text([(q, a)]) for q, a in [("Detect all circles.", "There is one circle[0.12,0.40,0.31,0.59] in the image.")]]
        tok = tokenizer.train(texts * 10 + [data.SYSTEM] * 10, 60)
        cfg = Config(vocab_size=len(tok))
        data.check_fanout_segmentation(tok, cfg, range(20))


if __name__ == "__main__":
    unittest.main()
