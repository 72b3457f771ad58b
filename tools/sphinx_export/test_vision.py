"""vision.SphinxVision on small stand-ins for SPHINX's four encoders (the interfaces llama_ens5 uses: Blip2Model
.get_qformer_features, open_clip's visual tower attributes, the ConvNeXt trunk, DINOv2 forward_features):
row order, the ConvNeXt 2x2 repeat and mean token, DINOv2's renormalisation, and that it traces to ONNX."""

import os
import sys
import tempfile
import types
import unittest

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vision  # noqa: E402

DIM, Q, CLIP_W, CONV_C, DINO_W = 16, 32, 8, 6, 10


class FakeQformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 12)

    def get_qformer_features(self, pixel_values):
        pooled = pixel_values.mean(dim=(2, 3))  # [N, 3]
        rows = self.lin(pooled)[:, None, :].expand(-1, Q, -1)
        return types.SimpleNamespace(last_hidden_state=rows)


class FakeClipVisual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, CLIP_W, 14, stride=14, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(CLIP_W))
        self.positional_embedding = nn.Parameter(torch.randn(257, CLIP_W))
        self.ln_pre = nn.LayerNorm(CLIP_W)
        self.transformer = nn.Identity()
        self.ln_post = nn.LayerNorm(CLIP_W)


class FakeConvNext(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, CONV_C, 32, stride=32)  # 256 -> 8x8, as convnext_xxlarge's trunk

    def forward(self, x):
        assert x.shape[-2:] == (256, 256)
        return self.conv(x)


class FakeDino(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, DINO_W, 14, stride=14)
        self.seen = None

    def forward_features(self, x):
        self.seen = x
        t = self.conv(x).flatten(2).transpose(1, 2)
        return {"x_norm_clstoken": t.mean(1), "x_norm_patchtokens": t}


def fake_llma():
    torch.manual_seed(0)
    return types.SimpleNamespace(
        qformer=FakeQformer(), clip=types.SimpleNamespace(visual=FakeClipVisual()), openclip_convnext_xxl=FakeConvNext(),
        dinov2_vitg14=FakeDino(), qformer_proj=nn.Sequential(nn.Linear(12, DIM), nn.LayerNorm(DIM)),
        visual_proj=nn.Sequential(nn.Linear(CLIP_W + CONV_C + DINO_W, DIM), nn.LayerNorm(DIM)),
        start_img=nn.Parameter(torch.rand(1, 1, DIM)), end_img=nn.Parameter(torch.rand(1, 1, DIM)))


class SphinxVisionTest(unittest.TestCase):
    def test_rows_and_order(self):
        llma = fake_llma()
        m = vision.SphinxVision(llma).eval()
        x = torch.randn(3, 3, 224, 224)
        with torch.no_grad():
            out = m(x)
            self.assertEqual(tuple(out.shape), (3, 291, DIM))
            self.assertTrue(torch.equal(out[:, 0], llma.start_img[0].expand(3, DIM)))
            self.assertTrue(torch.equal(out[:, 290], llma.end_img[0].expand(3, DIM)))
            q = llma.qformer_proj(llma.qformer.get_qformer_features(pixel_values=x).last_hidden_state)
            self.assertTrue(torch.allclose(out[:, 1:33], q, atol=1e-6))
            # the ensemble rows, llama_ens5's way (repeat_interleave, interpolate of the half copy)
            cx = llma.openclip_convnext_xxl(F.interpolate(x.half().float(), size=(256, 256)))
            cx = cx.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2).flatten(-2).permute(0, 2, 1)
            cx = torch.cat([cx.mean(dim=1, keepdim=True), cx], dim=1)
            self.assertEqual(tuple(cx.shape), (3, 257, CONV_C))
            mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
            std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
            d = llma.dinov2_vitg14.forward_features((x * std + mean - torch.tensor([0.485, 0.456, 0.406]).view(
                1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
            d = torch.cat([d["x_norm_clstoken"].unsqueeze(1), d["x_norm_patchtokens"]], dim=1)
            v = llma.clip.visual
            c = v.conv1(x).flatten(2).transpose(1, 2)
            c = torch.cat([v.class_embedding.view(1, 1, -1).expand(3, 1, -1), c], 1) + v.positional_embedding
            c = v.ln_post(v.ln_pre(c))
            ens = llma.visual_proj(torch.cat([c, cx, d], dim=2))
            self.assertTrue(torch.allclose(out[:, 33:290], ens, atol=1e-5))

    def test_nearest_indices_are_torchs_nearest(self):
        for size_in, size_out in ((224, 256), (256, 224), (7, 16), (100, 37), (14, 14)):
            x = torch.arange(size_in, dtype=torch.float32).view(1, 1, 1, size_in)
            expected = F.interpolate(x, size=(1, size_out))[0, 0, 0].long()
            self.assertTrue(torch.equal(vision.nearest_indices(size_in, size_out), expected), (size_in, size_out))

    def test_exports_to_onnx(self):
        m = vision.SphinxVision(fake_llma()).eval()
        with tempfile.TemporaryDirectory() as d:
            path = vision.export_vision(m, torch.randn(2, 3, 224, 224), d)
            self.assertGreater(os.path.getsize(path), 1000)


if __name__ == "__main__":
    unittest.main()
