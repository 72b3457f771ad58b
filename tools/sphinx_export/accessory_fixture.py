"""SPHINX (LLaMA2-Accessory llama_ens5) built by Accessory's own code at reduced sizes, saved as Accessory saves
it, exported by export_sphinx.py, and Accessory's own outputs recorded for the Java parity test.

  /usr/bin/python3 tools/sphinx_export/accessory_fixture.py [--work /tmp/sphinx-accessory] [--out DIR]

Needs the sources accessory_env.py lists (ACCESSORY_SOURCES, default /work/ext) and Debian's python3-torch,
-torchvision, -numpy, -pil, -onnx, -regex, -requests, -tqdm, -yaml, -filelock, -packaging, -wcwidth (ftfy),
-h5py. Three steps, each in its own process (torch.distributed is initialised once per process):

  shards     two gloo ranks, fairscale model parallel size 2: llama_ens5.Transformer(with_visual=True) at
             seed 0 (the encoders at the reduced sizes of accessory_env.py, the decoder from CONFIG), saved
             per rank as misc.save_checkpoint saves it - {"model": {"llma." + name: bf16 tensor}} in
             consolidated.NN-of-02.model.pth - with config.json (dataclasses.asdict(ModelArgs)) and meta.json.
  reference  one rank: the same Transformer, loaded from the two shards by Accessory's own
             util.tensor_parallel.load_tensor_parallel_model_list (2 -> 1 ranks), float32, eval; for each
             case: Accessory's T_padded_resize(448) on the upright image (EXIF applied with
             ImageOps.exif_transpose, as the node applies it when decoding), encode_image, and
             forward_inference on the prompt (conv_v1_2 template) plus 16 greedy steps.
  export     export_sphinx.main on the shard folder (BF16 weights, the checkpoint's own dtype).

Writes into --out (server/src/test/resources/sphinx-accessory-export/ by default: the test
that reads it needs the node's image decoder and view maker, which live in server): the export folder, the
case images, and accessory_reference.safetensors:
  case{i}_ids        int64  [P]            prompt ids: <s>, 1455 <unk> image placeholders, the text's ids
  case{i}_greedy     int64  [16]           Accessory's greedy continuation
  case{i}_logits     f32    [17, vocab]    forward_inference's logits after the prompt and each greedy id
  case{i}_rows       f32    [5·291, dim]   encode_image's rows for the five views, start/end rows included
and case{i}-accessory448.png: T_padded_resize's 8-bit 448 image before ToTensor (PadToSquare + Resize, what the
views are cut from), to separate the host resize from the rest.
"""

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import accessory_env  # noqa: E402

OUT = os.path.join(ROOT, "server/src/test/resources/sphinx-accessory-export")
TOKENIZER = os.path.join(ROOT, "runtime/src/main/resources/sphinxserve/models/sphinx-tiny/tokenizer.json")
SEED = 0
STEPS = 16
# ModelArgs the fixture's config.json says (the encoders' sizes are accessory_env's): GQA (4 heads, 2 kv heads,
# one per rank), a vocabulary covering the SPHINX-tiny tokenizer's 613 ids and even for the two ranks
CONFIG = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "multiple_of": 32, "norm_eps": 1e-5,
          "rope_theta": 10000.0}
VOCAB = 614
MAX_SEQ_LEN = 4096  # MetaModel.from_pretrained's
CASES = [  # (image file, question)
    ("wide.png", "What is in the image?"),
    ("exif-rotated.png", "Describe the picture in detail."),
    ("square.png", "How many circles are there?"),
]


def init_dist(rank, world, port):
    import torch.distributed as dist
    import fairscale.nn.model_parallel.initialize as fs_init

    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    fs_init.initialize_model_parallel(world)


def model_args(llama_ens5):
    return llama_ens5.ModelArgs(**CONFIG, vocab_size=VOCAB, max_seq_len=MAX_SEQ_LEN, max_batch_size=32)


class Holder(torch.nn.Module):
    """MetaModel's parameter naming ("llma." + the Transformer's names) without its tokenizer: MetaModel builds
    Accessory's Tokenizer, which for a tokenizer.json needs the `tokenizers` package this machine lacks, and the
    fixture's tokenizer is the SPHINX-tiny one (the decoder only needs its size)."""

    def __init__(self, llma):
        super().__init__()
        self.llma = llma


def shards_rank(rank, ckpt):
    llama_ens5 = accessory_env.reduced_sizes()
    init_dist(rank, 2, 29611)
    torch.manual_seed(SEED)  # the same stream on both ranks: fairscale cuts each rank's slice of one master weight
    args = model_args(llama_ens5)
    model = Holder(llama_ens5.Transformer(args, with_visual=True))
    state = {"model": {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}}  # precision bf16
    torch.save(state, os.path.join(ckpt, "consolidated.%02d-of-02.model.pth" % rank))
    if rank == 0:
        with open(os.path.join(ckpt, "config.json"), "w") as f:
            json.dump(dataclasses.asdict(args), f, indent=2)
        with open(os.path.join(ckpt, "meta.json"), "w") as f:
            json.dump({"llama_type": "llama_ens5"}, f, indent=2)


def step_shards(work):
    ckpt = os.path.join(work, "checkpoint")
    shutil.rmtree(ckpt, ignore_errors=True)
    os.makedirs(ckpt)
    torch.multiprocessing.spawn(shards_rank, args=(ckpt,), nprocs=2, join=True)
    print("shards: %s" % sorted(os.listdir(ckpt)))


def make_images(out):
    """Three synthetic images: a wide PNG, a PNG stored sideways with EXIF orientation 6 (display = rotate 90°
    clockwise), a 448 × 448 PNG (no resize on the host: only the global view's resize differs)."""
    from PIL import Image, ImageDraw

    def scene(w, h, seed):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 255 // (w + h)], -1)
        img = Image.fromarray(base.astype(np.uint8))
        d = ImageDraw.Draw(img)
        for _ in range(6):
            cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(8, max(9, min(w, h) // 4))
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        d.rectangle([w // 5, h // 3, w // 2, h // 2], outline=(255, 255, 255), width=3)
        return img

    scene(320, 200, 1).save(os.path.join(out, "wide.png"))
    upright = scene(210, 300, 2)  # portrait as displayed
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(os.path.join(out, "exif-rotated.png"), exif=exif.tobytes())
    scene(448, 448, 3).save(os.path.join(out, "square.png"))


def load_file(relative):
    """One Accessory source file as a module, without importing its package's __init__."""
    import importlib.util

    path = os.path.join(accessory_env.SOURCES, "accessory", relative)
    spec = importlib.util.spec_from_file_location(os.path.basename(relative)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_reference(work, out):
    from PIL import Image, ImageOps

    llama_ens5 = accessory_env.reduced_sizes()
    conversation = load_file("accessory/data/conversation/lib.py")  # its package __init__ wants h5py, sentencepiece
    from accessory.data.transform import get_transform
    from accessory.util import tensor_parallel

    sys.path.insert(0, os.path.join(ROOT, "tools", "sphinx_tiny"))
    import meta_folder
    from tokenizer import Tokenizer

    init_dist(0, 1, 29612)
    torch.manual_seed(SEED + 1)  # a different stream: every value must come from the checkpoint
    model = Holder(llama_ens5.Transformer(model_args(llama_ens5), with_visual=True))
    result = tensor_parallel.load_tensor_parallel_model_list(model, [os.path.join(work, "checkpoint")])
    if result["missing_keys"] or result["unexpected_keys"]:
        raise SystemExit("checkpoint does not match the model: %s" % result)
    llma = model.llma.float().eval()

    with open(TOKENIZER) as f:
        spec = json.load(f)
    tok = Tokenizer([tuple(m.split(" ")) for m in spec["model"]["merges"]],
                    any(not t["special"] for t in spec["added_tokens"]))
    bos, unk = tok.vocab["<s>"], tok.vocab["<unk>"]
    transform = get_transform("padded_resize", 448)
    resize_only = transform.transforms[:2]  # PadToSquare, Resize: the 8-bit image the views come from
    refs = {}
    for i, (name, question) in enumerate(CASES):
        image = ImageOps.exif_transpose(Image.open(os.path.join(out, name))).convert("RGB")
        conv = conversation.conv_v1_2()
        conv.append_message(conv.roles[0], question)
        conv.append_message(conv.roles[1], None)
        text_ids = tok.encode(conv.get_prompt())
        pixels = transform(image)[None]
        with torch.inference_mode():
            rows = torch.cat([torch.cat([llma.start_img, r, llma.end_img], dim=1)
                              for r in llma.encode_image(pixels)], dim=1)[0]
            tokens = torch.tensor([[bos] + text_ids])
            logits = [llma.forward_inference(tokens, 0, image=pixels)[0]]
            greedy = []
            for s in range(STEPS):
                greedy.append(int(logits[-1].argmax()))
                logits.append(llma.forward_inference(torch.tensor([[greedy[-1]]]), tokens.shape[1] + s)[0])
        img448 = image
        for t in resize_only:
            img448 = t(img448)
        refs["case%d_ids" % i] = torch.tensor([bos] + [unk] * llma.image_words + text_ids)
        refs["case%d_greedy" % i] = torch.tensor(greedy)
        refs["case%d_logits" % i] = torch.stack(logits[:STEPS + 1]).float()
        refs["case%d_rows" % i] = rows.float().contiguous()
        img448.save(os.path.join(out, "case%d-accessory448.png" % i))
        print("case %d %s: %d text ids, greedy %s" % (i, name, len(text_ids), greedy))
    meta_folder.write_safetensors(os.path.join(out, "accessory_reference.safetensors"), refs, dtype=None)


def step_export(work, out):
    accessory_env.reduced_sizes()
    import export_sphinx

    sys.argv = ["export_sphinx.py", "--checkpoint", os.path.join(work, "checkpoint"), "--tokenizer", TOKENIZER,
                "--out", out, "--name", "sphinx-accessory-reduced", "--dtype", "BF16"]
    export_sphinx.main()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/sphinx-accessory")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--step", choices=["shards", "reference", "export"], help="one step (default: all, in order)")
    args = ap.parse_args()
    if args.step == "shards":
        return step_shards(args.work)
    if args.step == "reference":
        return step_reference(args.work, args.out)
    if args.step == "export":
        return step_export(args.work, args.out)
    os.makedirs(args.work, exist_ok=True)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    make_images(args.out)
    for step in ("shards", "export", "reference"):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--step", step, "--work", args.work,
                        "--out", args.out], check=True)
    print("wrote %s" % args.out)


if __name__ == "__main__":
    main()
