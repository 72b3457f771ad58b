"""SPHINX-tiny through the real-checkpoint export path: the committed embedded model becomes an export folder.

  /usr/bin/python3 tools/sphinx_export/export_sphinx_tiny.py [--out runtime/src/test/resources/sphinx-tiny-export]

Reads runtime/src/main/resources/sphinxserve/models/sphinx-tiny/ (model.json, weights.safetensors in the Java
builder's names and [in, out] layout, tokenizer.json) into tools/sphinx_tiny/model.py's SphinxTiny, converts
the decoder to Meta's names and layout, exports encode_images as vision.onnx, and writes the same folder
files export_sphinx.py writes for a real SPHINX, plus the Java tests' fixtures:
  (the prompt, greedy ids and logits stay in runtime/src/test/resources/sphinx-tiny/parity.safetensors, which the
   Java test reads from there: one copy of the fixture)
  vision_parity.safetensors  that fixture's pixel_values [5, 3, 112, 112] float32 and PyTorch's image_embeds
                             [5, 58, 128] from the wrapped module that was exported

Before writing it checks, in PyTorch, that the Meta-layout decoder read back from consolidated.safetensors and
run Meta's way (interleaved complex RoPE) gives the fixture's logits.
"""

import argparse
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "sphinx_tiny"))

import meta_folder  # noqa: E402
import vision  # noqa: E402
from model import Config, SphinxTiny  # noqa: E402

MODEL_DIR = os.path.join(ROOT, "runtime/src/main/resources/sphinxserve/models/sphinx-tiny")
PARITY = os.path.join(ROOT, "runtime/src/test/resources/sphinx-tiny/parity.safetensors")
OUT = os.path.join(ROOT, "runtime/src/test/resources/sphinx-tiny-export")


def load_tiny():
    with open(os.path.join(MODEL_DIR, "model.json")) as f:
        manifest = json.load(f)
    cfg = Config(**manifest["decoder"], **manifest["vision"])
    model = SphinxTiny(cfg)
    weights = meta_folder.read_safetensors(os.path.join(MODEL_DIR, "weights.safetensors"))
    params = model.named_weights()
    if set(weights) != set(params):
        raise ValueError("weights.safetensors names differ from SphinxTiny's: %s" % sorted(set(weights) ^ set(params))[:5])
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name].reshape(p.shape))
    model.eval()
    return model, cfg


def meta_decoder(model, cfg):
    """Java-builder names, [in, out], rotate-half q/k -> Meta names, [out, in], interleaved q/k rows."""
    w = {k: v.detach().clone() for k, v in model.named_weights().items()}
    out = {"tok_embeddings.weight": w["embed_tokens"], "norm.weight": w["final_norm"],
           "output.weight": w["lm_head"].t().contiguous()}
    for l in range(cfg.num_layers):
        s, d = "layers.%d." % l, "layers.%d." % l
        out[d + "attention.wq.weight"] = meta_folder.rotate_half_to_interleaved(w[s + "q_proj"].t(), cfg.num_heads)
        out[d + "attention.wk.weight"] = meta_folder.rotate_half_to_interleaved(w[s + "k_proj"].t(), cfg.num_kv_heads)
        out[d + "attention.wv.weight"] = w[s + "v_proj"].t().contiguous()
        out[d + "attention.wo.weight"] = w[s + "o_proj"].t().contiguous()
        out[d + "feed_forward.w1.weight"] = w[s + "gate_proj"].t().contiguous()
        out[d + "feed_forward.w3.weight"] = w[s + "up_proj"].t().contiguous()
        out[d + "feed_forward.w2.weight"] = w[s + "down_proj"].t().contiguous()
        out[d + "attention_norm.weight"] = w[s + "input_norm"]
        out[d + "ffn_norm.weight"] = w[s + "post_attention_norm"]
    return out


def meta_logits(dec, params, ids, image_embeds, image_start=1):
    """Meta's llama forward (model.py of facebookresearch/llama, as Accessory's llama.py): RMSNorm, RoPE by
    complex multiplication of interleaved pairs, GQA by repeating kv heads, SwiGLU. float64 for a clean check."""
    dec = {k: v.double() for k, v in dec.items()}
    dim, nh, kh = params["dim"], params["n_heads"], params["n_kv_heads"]
    hd = dim // nh
    eps = params["norm_eps"]

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    x = F.embedding(ids, dec["tok_embeddings.weight"])
    m = image_embeds.shape[0]
    x = torch.cat([x[:image_start], image_embeds.double(), x[image_start + m:]], dim=0)
    length = x.shape[0]
    freqs = 1.0 / (params["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    cis = torch.polar(torch.ones(length, hd // 2, dtype=torch.float64), torch.outer(torch.arange(length).double(), freqs))

    def rope(t):  # [L, heads, hd]
        c = torch.view_as_complex(t.reshape(length, t.shape[1], hd // 2, 2).contiguous())
        return torch.view_as_real(c * cis[:, None, :]).reshape(t.shape)

    mask = torch.full((length, length), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(params["n_layers"]):
        p = "layers.%d." % l
        h = rms(x, dec[p + "attention_norm.weight"])
        q = rope((h @ dec[p + "attention.wq.weight"].t()).view(length, nh, hd))
        k = rope((h @ dec[p + "attention.wk.weight"].t()).view(length, kh, hd))
        v = (h @ dec[p + "attention.wv.weight"].t()).view(length, kh, hd)
        k = k.repeat_interleave(nh // kh, dim=1)
        v = v.repeat_interleave(nh // kh, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        att = torch.einsum("hqk,khd->qhd", torch.softmax(scores, -1), v).reshape(length, dim)
        x = x + att @ dec[p + "attention.wo.weight"].t()
        h = rms(x, dec[p + "ffn_norm.weight"])
        ff = F.silu(h @ dec[p + "feed_forward.w1.weight"].t()) * (h @ dec[p + "feed_forward.w3.weight"].t())
        x = x + ff @ dec[p + "feed_forward.w2.weight"].t()
    return rms(x, dec["norm.weight"]) @ dec["output.weight"].t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    model, cfg = load_tiny()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    # decoder, params, tokenizer, sphinx.json: the functions export_sphinx.py uses
    decoder = meta_decoder(model, cfg)
    params = meta_folder.params_json(decoder, cfg.num_heads, cfg.num_kv_heads, cfg.rms_norm_eps, cfg.rope_theta,
                                     cfg.max_context_tokens)
    meta_folder.write_decoder(args.out, decoder, params, "F32")
    tok = meta_folder.write_tokenizer(args.out, os.path.join(MODEL_DIR, "tokenizer.json"), "<s>", "</s>", "<unk>",
                                      params["vocab_size"])
    # SPHINX-tiny was trained on views whose global view Pillow resized from the 8-bit image (sphinx_tiny/data.py)
    meta_folder.write_sphinx_json(args.out, "sphinx-tiny", cfg.image_size, cfg.grid, cfg.view_size,
                                  cfg.tokens_per_view, "pillow-bicubic", "<image>", tok)

    # vision.onnx, and PyTorch's output of the exported module on the parity fixture's views
    parity = meta_folder.read_safetensors(PARITY)
    pixels = parity["pixel_values"].float()
    wrapped = vision.TinyVision(model).eval()
    with torch.no_grad():
        embeds = wrapped(pixels)
    expected = parity["image_embeds"].reshape(embeds.shape)
    if not torch.allclose(embeds, expected, atol=1e-5):
        raise SystemExit("wrapped vision differs from the fixture's image_embeds by %g" % (embeds - expected).abs().max())
    vision.export_vision(wrapped, pixels[:2], args.out)  # traced on 2 views: N stays dynamic
    meta_folder.write_safetensors(os.path.join(args.out, "vision_parity.safetensors"),
                                  {"pixel_values": pixels, "image_embeds": embeds}, "F32")

    # the Meta-layout decoder, as written, against the fixture's logits
    written = meta_folder.read_safetensors(os.path.join(args.out, "consolidated.safetensors"))
    ids = parity["prompt_ids"].tolist() + parity["greedy_ids"].tolist()
    logits = meta_logits(written, params, torch.tensor(ids), expected.reshape(-1, cfg.hidden_size))
    steps = parity["logits"].shape[0]
    start = len(parity["prompt_ids"]) - 1
    got = logits[start:start + steps].float()
    diff = (got - parity["logits"]).abs().max().item()
    if diff > 1e-3:
        raise SystemExit("Meta-layout decoder logits differ from the fixture's by %g" % diff)
    print("decoder logits vs fixture: max |diff| %.2e over %d steps" % (diff, steps))
    print("wrote %s (%d bytes)" % (args.out, meta_folder.folder_size(args.out)))


if __name__ == "__main__":
    main()
