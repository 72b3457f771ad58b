"""vision.onnx: one view's whole image path, pixel_values [N, 3, S, S] (CLIP-normalised views) -> image_embeds
[N, tokens_per_view, H], start and end rows included, so the node only has to place the rows in the sequence.

SphinxVision is llama_ens5's Transformer.encode_image per view (accessory/model/LLM/llama_ens5.py), minus
what the node does on the host (the 448 -> 224 global-view resize, cutting the tiles) and minus the
model-parallel scatter/gather (every rank computes the same thing on a slice of the views), plus the
start_img / end_img rows that forward() wraps around each view's 289 tokens.
"""

import inspect
import os
import shutil
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5  # tools/sphinx_tiny/model.py's
DINOV2_MEAN = (0.485, 0.456, 0.406)
DINOV2_STD = (0.229, 0.224, 0.225)


class TinyVision(nn.Module):
    """SPHINX-tiny's encode_images (tools/sphinx_tiny/model.py): start, patch tokens, query tokens, end."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        # model.py's layer norm takes its shape from x.shape[-1:], which the ONNX tracer records as a runtime
        # value that LayerNormalization cannot take; the same norm with the width as a constant:
        eps = LN_EPS

        def ln(x, prefix):
            w, b = model.w(prefix + ".weight"), model.w(prefix + ".bias")
            return F.layer_norm(x, (int(w.shape[0]),), w, b, eps)

        model._ln = ln

    def forward(self, pixel_values):
        return self.model.encode_images(pixel_values)


def nearest_indices(size_in, size_out):
    """The source index of each output pixel in PyTorch's F.interpolate(mode="nearest") (CPU and CUDA kernels:
    min(floor(dst · (in / out)), in − 1), in float32). Exported as a Gather: ONNX Runtime's Resize computes
    dst / (out / in) instead, which for 224 -> 256 lands just below the integers torch hits exactly (8 / 1.1428572
    = 6.9999995) and takes the neighbour: measured max |diff| 2.8 on a normalised view, 2.4 at ConvNeXt's output."""
    scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    index = torch.floor(torch.arange(size_out, dtype=torch.float32) * scale).long()
    return index.clamp(max=size_in - 1)


class SphinxVision(nn.Module):
    """SPHINX (llama_ens5) per view: [start_img, qformer_proj(Q-Former 32), visual_proj(CLIP ‖ ConvNeXt ‖
    DINOv2, 257), end_img] = 291 rows. `llma` is the Accessory Transformer built with with_visual=True and
    its weights loaded; nothing from Accessory is imported here."""

    CONVNEXT_SIZE = 256  # encode_image: F.interpolate(local_image.half(), size=(256, 256))

    def __init__(self, llma, view_size=224):
        super().__init__()
        self.register_buffer("convnext_index", nearest_indices(view_size, self.CONVNEXT_SIZE))
        self.qformer = llma.qformer
        self.clip_visual = llma.clip.visual
        self.convnext = llma.openclip_convnext_xxl
        self.dinov2 = llma.dinov2_vitg14
        self.qformer_proj = llma.qformer_proj
        self.visual_proj = llma.visual_proj
        self.start_img = llma.start_img  # [1, 1, dim]
        self.end_img = llma.end_img
        self.register_buffer("clip_mean", torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1))
        self.register_buffer("clip_std", torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1))
        self.register_buffer("dino_mean", torch.tensor(DINOV2_MEAN).view(1, 3, 1, 1))
        self.register_buffer("dino_std", torch.tensor(DINOV2_STD).view(1, 3, 1, 1))

    def clip_tokens(self, x):
        """Transformer.clip_encode_image: all 257 tokens after ln_post, no projection. Accessory permutes to
        sequence-first for open_clip's transformer; open_clip >= 2.24 builds it batch-first, where that
        permute would attend across the batch, so the permute is applied only where the transformer wants it."""
        v = self.clip_visual
        n = x.shape[0]
        x = v.conv1(x)
        x = x.reshape(n, x.shape[1], -1).permute(0, 2, 1)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(n, 1, x.shape[-1])  # = class + zeros
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        if getattr(v.transformer, "batch_first", False):
            x = v.transformer(x)
        else:
            x = v.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return v.ln_post(x)

    def forward(self, pixel_values):
        x = pixel_values
        n = x.shape[0]
        q = self.qformer.get_qformer_features(pixel_values=x).last_hidden_state  # [N, 32, 768]
        clip = self.clip_tokens(x)  # [N, 257, 1024]
        # ConvNeXt sees the view nearest-resized to 256 from its fp16 copy (SPHINX: interpolate(x.half())); the
        # resize as index_select, which is what torch's nearest kernel does (see nearest_indices)
        cx = x.half().float().index_select(2, self.convnext_index).index_select(3, self.convnext_index)
        cx = self.convnext(cx)  # [N, 3072, 8, 8]
        c, h, w = cx.shape[1], cx.shape[2], cx.shape[3]
        # = repeat_interleave(2) on both spatial axes, written as expand so it exports as plain ops
        cx = cx[:, :, :, None, :, None].expand(-1, -1, -1, 2, -1, 2).reshape(n, c, 2 * h, 2 * w)
        cx = cx.flatten(-2).permute(0, 2, 1)  # [N, 256, 3072]
        cx = torch.cat([cx.mean(dim=1, keepdim=True), cx], dim=1)  # the mean as a class token: [N, 257, 3072]
        dino = self.dinov2.forward_features((x * self.clip_std + self.clip_mean - self.dino_mean) / self.dino_std)
        dino = torch.cat([dino["x_norm_clstoken"].unsqueeze(1), dino["x_norm_patchtokens"]], dim=1)  # [N, 257, 1536]
        ens = torch.cat([clip, cx, dino], dim=2)  # [N, 257, 5632]
        tokens = torch.cat([self.qformer_proj(q), self.visual_proj(ens)], dim=1)  # [N, 289, dim]
        d = tokens.shape[-1]
        start = self.start_img.reshape(1, 1, d).expand(n, 1, d)
        end = self.end_img.reshape(1, 1, d).expand(n, 1, d)
        return torch.cat([start, tokens, end], dim=1)


def export_vision(module, example, out_dir):
    """Writes out_dir/vision.onnx (opset 17, N dynamic). A graph over 2 GB (protobuf's limit) keeps its weights
    in one external file, vision.onnx.data beside it: torch writes one file per tensor, the onnx package
    gathers them (needs `pip install onnx`)."""
    module.eval()
    path = os.path.join(out_dir, "vision.onnx")
    kwargs = dict(input_names=["pixel_values"], output_names=["image_embeds"], opset_version=17,
                  dynamic_axes={"pixel_values": {0: "n"}, "image_embeds": {0: "n"}}, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter, whose output this was written and checked with
    nbytes = sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
    with torch.no_grad():
        if nbytes < 1.5 * 2 ** 30:
            torch.onnx.export(module, (example,), path, **kwargs)
            return path
        import onnx  # only for big graphs

        tmp = tempfile.mkdtemp(prefix="vision-", dir=out_dir)
        try:
            torch.onnx.export(module, (example,), os.path.join(tmp, "vision.onnx"), **kwargs)
            model = onnx.load(os.path.join(tmp, "vision.onnx"))  # reads the per-tensor files
            onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="vision.onnx.data", size_threshold=1024)
        finally:
            shutil.rmtree(tmp)
    return path
