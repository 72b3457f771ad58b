"""Full-size SPHINX-v2-1k encoders, one at a time, built by the constructors llama_ens5 calls (random weights, no
checkpoint): parameters, build time, peak memory, and for one encoder the ONNX export through vision.export_vision's
external-data path. The numbers docs/MODELS.md extrapolates the whole export from.

  /usr/bin/python3 tools/sphinx_export/fullsize_dryrun.py build qformer|clip|convnext|dinov2
  /usr/bin/python3 tools/sphinx_export/fullsize_dryrun.py export clip|dinov2 --out /tmp/dryrun

One encoder per process (peak RSS is the process's). Uses accessory_env's shims, not its reduced sizes.
"""

import argparse
import os
import resource
import shutil
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import accessory_env  # noqa: E402


def build(name):
    """The encoder as llama_ens5.Transformer.__init__ builds it (load_pretrained_visual_encoder=False)."""
    from importlib import resources as impresources

    if name == "qformer":
        import accessory
        from transformers import Blip2Config, Blip2Model

        m = Blip2Model(Blip2Config.from_pretrained(
            str(impresources.files(accessory) / "resources/hf/Salesforce/blip2-opt-2.7b/config.json")))
        m.language_projection = None
        m.language_model = None
        return m
    import open_clip

    if name == "clip":
        m, _, _ = open_clip.create_model_and_transforms("ViT-L-14", pretrained=None)
        m.transformer = None
        return m.visual
    if name == "convnext":
        m, _, _ = open_clip.create_model_and_transforms("convnext_xxlarge", pretrained=None)
        m = m.visual.trunk
        m.head.global_pool = torch.nn.Identity()
        m.head.flatten = torch.nn.Identity()
        return m
    if name == "dinov2":
        return torch.hub.load("facebookresearch/dinov2", "dinov2_vitg14", pretrained=False)
    raise SystemExit("unknown encoder " + name)


class Forward(torch.nn.Module):
    """The encoder's call in encode_image (CLIP through all 257 tokens as clip_encode_image)."""

    def __init__(self, name, m):
        super().__init__()
        self.name, self.m = name, m

    def forward(self, x):
        if self.name == "dinov2":
            return self.m.forward_features(x)["x_norm_patchtokens"]
        if self.name == "clip":
            v = self.m
            x = v.conv1(x).flatten(2).transpose(1, 2)
            x = torch.cat([v.class_embedding.view(1, 1, -1).expand(x.shape[0], 1, -1), x], 1) + v.positional_embedding
            return v.ln_post(v.transformer(v.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2))
        raise SystemExit("export measured for clip and dinov2 only")


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["build", "export"])
    ap.add_argument("encoder")
    ap.add_argument("--out", default="/tmp/sphinx-dryrun")
    ap.add_argument("--keep", action="store_true", help="keep the export, with check.in / check.out: two views and "
                                                        "PyTorch's output, little-endian float32, for an ONNX Runtime check")
    args = ap.parse_args()
    accessory_env.install_shims()
    torch.set_default_dtype(torch.float32)
    t0 = time.time()
    m = build(args.encoder).float().eval()
    n = sum(p.numel() for p in m.parameters())
    print("%s: %.3f B parameters, built in %.0f s, peak RSS %.1f GiB" % (args.encoder, n / 1e9, time.time() - t0, peak_gb()))
    if args.what == "export":
        import vision

        shutil.rmtree(args.out, ignore_errors=True)
        os.makedirs(args.out)
        t1 = time.time()
        wrapped = Forward(args.encoder, m).eval()
        vision.export_vision(wrapped, torch.randn(2, 3, 224, 224), args.out)
        size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
        print("%s: exported in %.0f s (%s, %.2f GB), peak RSS %.1f GiB"
              % (args.encoder, time.time() - t1, sorted(os.listdir(args.out)), size / 1e9, peak_gb()))
        if not args.keep:
            shutil.rmtree(args.out)
            return
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 0.5
        with torch.no_grad():
            y = wrapped(x)
        x.numpy().astype("<f4").tofile(os.path.join(args.out, "check.in"))
        y.numpy().astype("<f4").tofile(os.path.join(args.out, "check.out"))
        print("kept %s; PyTorch output %s" % (args.out, tuple(y.shape)))


if __name__ == "__main__":
    main()
