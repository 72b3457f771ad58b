"""Writes the export folder the Java bundle builder reads (everything except vision.onnx, see vision.py):

  params.json               Meta's LLaMA params
  consolidated.safetensors  the decoder only, Meta's names, torch Linear layout [out, in], interleaved RoPE rows
  tokenizer.json            Hugging Face tokenizer, copied
  tokenizer_config.json     bos/eos/unk token strings (no chat_template: SPHINX's conv_v1_2 is fixed)
  sphinx.json               image preprocessing and the per-view token count

Both exporters (export_sphinx.py for real checkpoints, export_sphinx_tiny.py) go through these functions.
"""

import json
import os
import re
import shutil
import struct

import torch

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PAD_RGB = [122, 116, 104]  # int(255 * CLIP mean), Accessory's PadToSquare

_DECODER = re.compile(r"^(tok_embeddings\.weight|norm\.weight|output\.weight|layers\.\d+\.("
                      r"attention\.w[qkvo]\.weight|feed_forward\.w[123]\.weight|attention_norm\.weight|ffn_norm\.weight))$")

_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}
_NAMES = {t: n for n, t in _DTYPES.items()}


def decoder_tensors(state):
    """The Meta-named decoder tensors of a state dict (Accessory's Transformer already uses Meta's names and
    interleaved RoPE; the visual side is dropped)."""
    return {k: v for k, v in state.items() if _DECODER.match(k)}


def rotate_half_to_interleaved(w, n_heads):
    """q/k projection rows [n_heads·D, in] from Hugging Face's rotate-half order to Meta's interleaved order:
    Meta row h·D + 2i + j = HF row h·D + j·D/2 + i (the pair (x[i], x[i + D/2]) becomes (x[2i], x[2i+1]))."""
    out_dim, in_dim = w.shape
    d = out_dim // n_heads
    return w.reshape(n_heads, 2, d // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def ffn_fields(dim, hidden, multiple_of=None, ffn_dim_multiplier=None):
    """`multiple_of` (and `ffn_dim_multiplier`) for params.json when Meta's formula gives `hidden` with them;
    given values are tried first, then a multiplier-free power-of-two `multiple_of`; {} if nothing fits."""

    def meta_hidden(m, mult):
        h = int(2 * 4 * dim / 3)
        if mult is not None:
            h = int(mult * h)
        return m * ((h + m - 1) // m)

    if multiple_of is not None and meta_hidden(multiple_of, ffn_dim_multiplier) == hidden:
        fields = {"multiple_of": multiple_of}
        if ffn_dim_multiplier is not None:
            fields["ffn_dim_multiplier"] = ffn_dim_multiplier
        return fields
    for m in (4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1):
        if meta_hidden(m, None) == hidden:
            return {"multiple_of": m}
    return {}


def params_json(decoder, n_heads, n_kv_heads, norm_eps, rope_theta, max_seq_len, multiple_of=None,
                ffn_dim_multiplier=None):
    """Meta's params.json from the decoder tensors (shapes decide dim, layers, vocabulary and MLP width) and
    the config values the tensors cannot tell."""
    vocab, dim = decoder["tok_embeddings.weight"].shape
    n_layers = len({k.split(".")[1] for k in decoder if k.startswith("layers.")})
    hidden = decoder["layers.0.feed_forward.w1.weight"].shape[0]
    head_dim = dim // n_heads
    if decoder["layers.0.attention.wq.weight"].shape[0] != n_heads * head_dim:
        raise ValueError("wq has %d rows, not n_heads·head_dim = %d" % (decoder["layers.0.attention.wq.weight"].shape[0],
                                                                        n_heads * head_dim))
    if decoder["layers.0.attention.wk.weight"].shape[0] != n_kv_heads * head_dim:
        raise ValueError("wk rows do not match n_kv_heads %d" % n_kv_heads)
    params = {"dim": int(dim), "n_layers": n_layers, "n_heads": n_heads, "n_kv_heads": n_kv_heads,
              "vocab_size": int(vocab), "norm_eps": float(norm_eps), "rope_theta": float(rope_theta),
              "max_seq_len": int(max_seq_len)}
    params.update(ffn_fields(int(dim), int(hidden), multiple_of, ffn_dim_multiplier))
    return params


def write_safetensors(path, tensors, dtype="F32"):
    """safetensors written by hand: u64 LE header length, JSON header padded with spaces to a multiple of 8,
    raw little-endian data. Tensors are converted one at a time while writing, so a 13B model needs no second
    full copy in memory. dtype=None keeps each tensor's own dtype (F32, F16, BF16, I64: a fixture's mix)."""
    names = sorted(tensors)
    kinds = {name: dtype or _NAMES[tensors[name].dtype] for name in names}
    header, offset = {}, 0
    for name in names:
        t = tensors[name]
        size = t.numel() * torch.tensor([], dtype=_DTYPES[kinds[name]]).element_size()
        header[name] = {"dtype": kinds[name], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            torch_dtype = _DTYPES[kinds[name]]
            t = tensors[name].detach().to(torch_dtype).contiguous().cpu()
            if torch_dtype == torch.bfloat16:  # numpy has no bfloat16: write its bits
                t = t.view(torch.int16)
            f.write(t.numpy().tobytes())  # this machine is little-endian, as the format is


def read_safetensors(path):
    """{name: torch tensor} of a safetensors file (F32, F16, BF16, I64): for checks and the SPHINX-tiny weights."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        dt = kinds[h["dtype"]]
        raw = bytearray(data[a:b])
        if dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(h["shape"])
    return out


def token_present(tokenizer, token):
    return token in tokenizer["model"].get("vocab", {}) or any(t["content"] == token for t in tokenizer["added_tokens"])


def write_tokenizer(out_dir, tokenizer_json, bos, eos, unk, vocab_size):
    """Copies tokenizer.json and writes tokenizer_config.json; refuses tokens the tokenizer lacks or a
    vocabulary larger than the embedding."""
    with open(tokenizer_json) as f:
        tok = json.load(f)
    for t in (bos, eos, unk):
        if not token_present(tok, t):
            raise ValueError("%s: has no token %r" % (tokenizer_json, t))
    ids = list(tok["model"].get("vocab", {}).values()) + [t["id"] for t in tok["added_tokens"]]
    if max(ids) >= vocab_size:
        raise ValueError("%s: token id %d outside the embedding's %d rows" % (tokenizer_json, max(ids), vocab_size))
    shutil.copyfile(tokenizer_json, os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": bos, "eos_token": eos, "unk_token": unk}, f, indent=2)
        f.write("\n")
    return tok


def write_sphinx_json(out_dir, name, image_size, grid, view_size, tokens_per_view, global_view_resize,
                      image_placeholder_token, tokenizer):
    if global_view_resize not in ("torch-bicubic", "pillow-bicubic"):
        raise ValueError("global_view_resize: " + global_view_resize)
    if not token_present(tokenizer, image_placeholder_token):
        raise ValueError("image placeholder %r is not in tokenizer.json" % image_placeholder_token)
    if image_size != grid * view_size:
        raise ValueError("image_size %d is not grid·view_size" % image_size)
    doc = {"name": name, "image_size": image_size, "grid": grid, "view_size": view_size,
           "tokens_per_view": tokens_per_view, "pad_rgb": PAD_RGB, "mean": CLIP_MEAN, "std": CLIP_STD,
           "global_view_resize": global_view_resize, "image_placeholder_token": image_placeholder_token}
    with open(os.path.join(out_dir, "sphinx.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def write_decoder(out_dir, decoder, params, dtype):
    """params.json and consolidated.safetensors; checks every tensor's shape against params first."""
    dim, hidden = params["dim"], decoder["layers.0.feed_forward.w1.weight"].shape[0]
    hd = dim // params["n_heads"]
    q, kv = params["n_heads"] * hd, params["n_kv_heads"] * hd
    want = {"tok_embeddings.weight": (params["vocab_size"], dim), "norm.weight": (dim,),
            "output.weight": (params["vocab_size"], dim)}
    for l in range(params["n_layers"]):
        p = "layers.%d." % l
        want.update({p + "attention.wq.weight": (q, dim), p + "attention.wk.weight": (kv, dim),
                     p + "attention.wv.weight": (kv, dim), p + "attention.wo.weight": (dim, q),
                     p + "feed_forward.w1.weight": (hidden, dim), p + "feed_forward.w3.weight": (hidden, dim),
                     p + "feed_forward.w2.weight": (dim, hidden), p + "attention_norm.weight": (dim,),
                     p + "ffn_norm.weight": (dim,)})
    if set(want) != set(decoder):
        raise ValueError("decoder tensors: missing %s, unexpected %s" % (sorted(set(want) - set(decoder))[:5],
                                                                        sorted(set(decoder) - set(want))[:5]))
    for k, shape in want.items():
        if tuple(decoder[k].shape) != shape:
            raise ValueError("%s: shape %s, expected %s" % (k, tuple(decoder[k].shape), shape))
    with open(os.path.join(out_dir, "params.json"), "w") as f:
        json.dump(params, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(out_dir, "consolidated.safetensors"), decoder, dtype)


def folder_size(out_dir):
    return sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
