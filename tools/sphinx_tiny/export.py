"""Turns train.py's state into the committed SPHINX-tiny files and the Java tests' fixtures.

  /usr/bin/python3 tools/sphinx_tiny/export.py [--state tools/sphinx_tiny/state]

Writes
  runtime/src/main/resources/sphinxserve/models/sphinx-tiny/
      model.json            shapes (the Java builder's DecoderShape/VisionShape) and how it was trained
      weights.safetensors   float32 tensors named as the Java graph builder names them
      tokenizer.json        the Hugging Face tokenizer training used
  runtime/src/test/resources/sphinx-tiny/
      parity.safetensors    pixel values, prompt ids, greedy ids and PyTorch's logits at each step
      tokenizer-samples.json texts and the ids this tokenizer gives them (the node must give the same)
The bundle builder (`bin/build-bundle --weights DIR`) turns the first three into the served ONNX graphs.
"""

import argparse
import json
import os
import random
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import scenes  # noqa: E402
from model import Config, SphinxTiny  # noqa: E402
from heldout import HELDOUT_SEED_BASE  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MODEL_DIR = os.path.join(ROOT, "runtime/src/main/resources/sphinxserve/models/sphinx-tiny")
FIXTURE_DIR = os.path.join(ROOT, "runtime/src/test/resources/sphinx-tiny")
PARITY_STEPS = 8

DECODER_KEYS = ["vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
                "max_context_tokens", "rope_theta", "rms_norm_eps"]
VISION_KEYS = ["image_size", "grid", "view_size", "patch_size", "vit_width", "vit_layers", "vit_heads", "conv_width",
               "num_queries"]


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format: u64 header length, JSON header, raw little-endian data, in name order."""
    header, blobs, offset = {}, [], 0
    dtypes = {np.float32: "F32", np.float16: "F16", np.int64: "I64"}
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtypes[arr.dtype.type], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_state(directory):
    """(model in eval mode, config, tokenizer, training record) from train.py's state folder."""
    import train
    trainer = train.Trainer(directory)
    trainer.model.eval()
    r = trainer.recipe
    joint = max(0, trainer.step - r["vision_steps"])
    # runtime's trained_model.proto TrainingRecord (the Java side parses model.json strictly).
    record = {"steps": joint, "scenes_seen": joint * r["batch"], "batch": r["batch"], "lr": r["lr"], "seed": r["seed"],
              "seconds": round(trainer.seconds), "vision_steps": min(trainer.step, r["vision_steps"]),
              "vision_batch": r["vision_batch"],
              "command": "python3 tools/sphinx_tiny/train.py --fresh, then resumed: %d of %d steps in %d sessions; recipe %s"
                         % (trainer.step, trainer.total_steps, len(trainer.sessions),
                            json.dumps({k: v for k, v in r.items() if k != "config"}, sort_keys=True))}
    return trainer.model, trainer.cfg, trainer.tok, record


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", default=os.path.join(HERE, "state"), help="train.py's state folder")
    args = ap.parse_args()
    model, cfg, tok, record = load_state(args.state)

    os.makedirs(MODEL_DIR, exist_ok=True)
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    tensors = {name: p.detach().numpy().astype(np.float32) for name, p in model.named_weights().items()}
    write_safetensors(os.path.join(MODEL_DIR, "weights.safetensors"), tensors)
    with open(os.path.join(MODEL_DIR, "tokenizer.json"), "w") as f:
        f.write(tok.to_json())
    c = cfg.to_dict()
    manifest = {
        "name": "sphinx-tiny",
        "description": "SPHINX-shaped model trained on synthetic scenes (tools/sphinx_tiny); see docs/MODEL.md",
        "decoder": {k: c[k] for k in DECODER_KEYS},
        "vision": {k: c[k] for k in VISION_KEYS},
        "training": record,
    }
    with open(os.path.join(MODEL_DIR, "model.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    # Tokenizer samples: system text, every question form, answers with coordinates.
    samples = [data.SYSTEM, "### Human: hello, world!\n### Assistant: 1,2;3 [4.5] don't\n###",
               # coordinate tokens inside other digits, at the ends of the range, and not quite coordinates
               "10.505 [1.00,0.999;0.00] 0.5 1.001 x0.42y"]
    for s in range(40):
        scene = scenes.make_scene(HELDOUT_SEED_BASE + s)
        turns = scenes.conversation(scene, random.Random(s), max_turns=3)
        samples.append(data.full_text(turns))
    with open(os.path.join(FIXTURE_DIR, "tokenizer-samples.json"), "w") as f:
        json.dump({"samples": [{"text": t, "ids": tok.encode(t)} for t in samples]}, f)
        f.write("\n")

    write_parity(model, cfg, tok)
    print("exported to", MODEL_DIR, "and", FIXTURE_DIR)


@torch.no_grad()
def write_parity(model, cfg, tok):
    """PyTorch's logits for a held-out question, greedy, with pixel values the Java test feeds verbatim."""
    scene = scenes.make_scene(HELDOUT_SEED_BASE + 3)
    pixels = data.views(scene.image, cfg).astype(np.float16)
    embeds = model.encode_images(torch.from_numpy(pixels.astype(np.float32)))
    embeds = embeds.reshape(1, cfg.tokens_per_image, cfg.hidden_size)
    text = data.prompt_text([scenes.detection(scene, scene.objects[0].kind)])
    prompt = [data.BOS] + [data.IMAGE] * cfg.tokens_per_image + tok.encode(text)
    ids = list(prompt)
    rows, greedy = [], []
    for _ in range(PARITY_STEPS + 1):
        logits = model.decode(torch.tensor([ids]), embeds)[0, -1]
        rows.append(logits.numpy())
        nxt = int(torch.argmax(logits))
        greedy.append(nxt)
        ids.append(nxt)
    write_safetensors(os.path.join(FIXTURE_DIR, "parity.safetensors"), {
        "pixel_values": pixels,
        "image_embeds": embeds[0].numpy().astype(np.float32),
        "prompt_ids": np.array(prompt, dtype=np.int64),
        "greedy_ids": np.array(greedy[:PARITY_STEPS], dtype=np.int64),
        "logits": np.stack(rows).astype(np.float32),
    }, {"text": text, "greedy_text": tok.decode(greedy)})


if __name__ == "__main__":
    main()
