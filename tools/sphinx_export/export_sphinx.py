"""A real SPHINX checkpoint (LLaMA2-Accessory llama_ens5: SPHINX-1k, SPHINX-v2-1k) -> the export folder.

  python export_sphinx.py --checkpoint DIR --tokenizer tokenizer.json --out OUT [--dtype BF16] [--skip-vision]
                          [--parity-image PNG]

DIR is the released folder: consolidated.NN-of-MM.model.pth, config.json (Accessory's ModelArgs overrides),
meta.json ({"llama_type": "llama_ens5"}), tokenizer.model. tokenizer.json is the Hugging Face conversion of
that LLaMA-2 sentencepiece model (e.g. meta-llama/Llama-2-13b-hf's tokenizer.json; 32,000 ids).

NOT RUN in this repository (no checkpoint, no Accessory/open_clip/transformers here): see README.md for the
environment, the commands and the memory it needs. The decoder half (shards.py, meta_folder.py) is the code
export_sphinx_tiny.py and test_shards.py exercise; the vision half builds the encoders with llama_ens5's own
constructor and wraps them in vision.SphinxVision.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import meta_folder  # noqa: E402
import shards  # noqa: E402
import vision  # noqa: E402

TOKENS_PER_VIEW = 1 + 32 + 257 + 1  # start_img, Q-Former, ensemble, end_img


def accessory_config(directory):
    """llama_ens5.ModelArgs defaults overridden by the folder's config.json, as MetaModel builds them (it also
    sets max_seq_len itself: 4096 unless from_pretrained is told otherwise)."""
    cfg = {"dim": 5120, "n_layers": 40, "n_heads": 40, "n_kv_heads": None, "multiple_of": 256,
           "ffn_dim_multiplier": None, "norm_eps": 1e-5, "rope_theta": 10000, "rope_scaling": None}
    path = os.path.join(directory, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            cfg.update(json.load(f))
    meta = os.path.join(directory, "meta.json")
    if os.path.exists(meta):
        with open(meta) as f:
            kind = json.load(f).get("llama_type")
        if kind != "llama_ens5":
            raise SystemExit("meta.json says llama_type %r; this exporter knows llama_ens5 only" % kind)
    if cfg["rope_scaling"] is not None:  # positions multiplied by it: params.json cannot say so
        raise SystemExit("config.json has rope_scaling %r, which Meta's params.json cannot express" % cfg["rope_scaling"])
    return cfg


def build_visual(cfg, merged, vocab, dim):
    """llama_ens5's Transformer with its visual modules (built by its own constructor, so the encoders are
    exactly SPHINX's: Blip2Model from Accessory's bundled config, open_clip ViT-L-14 and convnext_xxlarge
    trunk, torch.hub dinov2_vitg14), no decoder layers, float32, weights from the merged checkpoint."""
    os.environ.setdefault("XFORMERS_DISABLED", "1")  # DINOv2's plain attention: traceable, and on CPU
    import torch.distributed as dist
    import fairscale.nn.model_parallel.initialize as fs_init
    from accessory.model.LLM import llama_ens5

    if not dist.is_initialized():  # fairscale's layers ask for the model-parallel size: one rank
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29517", rank=0, world_size=1)
    if not fs_init.model_parallel_is_initialized():
        fs_init.initialize_model_parallel(1)
    args = llama_ens5.ModelArgs(dim=dim, n_layers=0, n_heads=cfg["n_heads"], n_kv_heads=cfg["n_kv_heads"],
                                vocab_size=vocab, multiple_of=cfg["multiple_of"],
                                ffn_dim_multiplier=cfg["ffn_dim_multiplier"], norm_eps=cfg["norm_eps"],
                                rope_theta=cfg["rope_theta"], max_seq_len=4096, load_pretrained_visual_encoder=False)
    torch.set_default_dtype(torch.float32)
    llma = llama_ens5.Transformer(args, with_visual=True).float()
    state = {k: v for k, v in merged.items() if not k.startswith("layers.")}
    result = llma.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not meta_folder.decoder_tensors({k: None})]  # decoder: on disk
    if missing or result.unexpected_keys:
        raise SystemExit("visual weights do not match llama_ens5: missing %s, unexpected %s"
                         % (missing[:8], result.unexpected_keys[:8]))
    return llma.eval()


def host_views(png):
    """The five views of an image as the node makes them: SPHINX's host transform to 448, the global view by
    torch bicubic (float32 here), then the four tiles."""
    import torch.nn.functional as F
    from PIL import Image
    from views_fixture import host_transform

    x = host_transform(Image.open(png))[None]
    g = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
    tiles = [x[..., :224, :224], x[..., :224, 224:], x[..., 224:, :224], x[..., 224:, 224:]]
    return torch.cat([g] + tiles, dim=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True, help="folder with consolidated.NN-of-MM.model.pth and config.json")
    ap.add_argument("--tokenizer", required=True, help="Hugging Face tokenizer.json of the LLaMA-2 tokenizer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default=None, help="model name for sphinx.json (default: the checkpoint folder's)")
    ap.add_argument("--dtype", default="BF16", choices=["BF16", "F16", "F32"],
                    help="consolidated.safetensors dtype (SPHINX's weights are bf16: BF16 loses nothing)")
    ap.add_argument("--max-seq-len", type=int, default=4096, help="MetaModel.from_pretrained's default")
    ap.add_argument("--skip-vision", action="store_true", help="decoder files only (no Accessory needed)")
    ap.add_argument("--parity-image", help="also write vision_parity.safetensors for this image's five views")
    args = ap.parse_args()

    cfg = accessory_config(args.checkpoint)
    merged = shards.load_merged(args.checkpoint)
    os.makedirs(args.out, exist_ok=True)

    decoder = meta_folder.decoder_tensors(merged)
    n_kv = cfg["n_kv_heads"] or cfg["n_heads"]
    params = meta_folder.params_json(decoder, cfg["n_heads"], n_kv, cfg["norm_eps"], cfg["rope_theta"],
                                     args.max_seq_len, cfg["multiple_of"], cfg["ffn_dim_multiplier"])
    if params["dim"] != cfg["dim"]:
        raise SystemExit("config.json dim %s, tensors %d" % (cfg["dim"], params["dim"]))
    meta_folder.write_decoder(args.out, decoder, params, args.dtype)
    tok = meta_folder.write_tokenizer(args.out, args.tokenizer, "<s>", "</s>", "<unk>", params["vocab_size"])
    name = args.name or os.path.basename(os.path.normpath(args.checkpoint))
    # real SPHINX resizes its global view with F.interpolate(bicubic) inside the model; "<unk>" stands in the
    # prompt for the image rows (never embedded: the rows replace it)
    meta_folder.write_sphinx_json(args.out, name, 448, 2, 224, TOKENS_PER_VIEW, "torch-bicubic", "<unk>", tok)
    print("decoder written: %s" % json.dumps(params))
    if args.skip_vision:
        return
    vocab, dim = decoder["tok_embeddings.weight"].shape
    for k in list(decoder):  # the decoder is on disk; the vision export needs the memory
        del merged[k]
    del decoder
    llma = build_visual(cfg, merged, vocab, dim)
    del merged
    wrapped = vision.SphinxVision(llma).eval()
    example = torch.randn(2, 3, 224, 224) * 0.5
    with torch.no_grad():
        out = wrapped(example)
    if tuple(out.shape) != (2, TOKENS_PER_VIEW, params["dim"]):
        raise SystemExit("vision output %s, expected (2, %d, %d)" % (tuple(out.shape), TOKENS_PER_VIEW, params["dim"]))
    vision.export_vision(wrapped, example, args.out)
    if args.parity_image:
        views = host_views(args.parity_image)
        with torch.no_grad():
            embeds = wrapped(views)
        meta_folder.write_safetensors(os.path.join(args.out, "vision_parity.safetensors"),
                                      {"pixel_values": views, "image_embeds": embeds}, "F32")
    print("wrote %s (%d bytes)" % (args.out, meta_folder.folder_size(args.out)))


if __name__ == "__main__":
    main()
