"""Scores a checkpoint (or the committed weights) on the held-out set in PyTorch, greedy, as the node would.

  /usr/bin/python3 tools/sphinx_tiny/evaluate.py --checkpoint /tmp/run5 [--limit 100] [--tasks referring,detection]
  /usr/bin/python3 tools/sphinx_tiny/evaluate.py --committed

The metrics follow the Java ModelAccuracyTest (the one that counts): referring Acc@0.5 on the first box;
detection = right count and every box matched at IoU >= 0.5; PCK@0.1 of the person box's longer side; caption
object recall. For watching training without building a bundle; an approximation of the node only in that
PyTorch here recomputes the whole sequence at each step instead of using a KV cache.
"""

import argparse
import json
import os
import re
import struct
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
from export import MODEL_DIR, ROOT, load_checkpoint  # noqa: E402
from model import Config, SphinxTiny  # noqa: E402
from tokenizer import PAD, Tokenizer  # noqa: E402

HELDOUT = os.path.join(ROOT, "server/src/test/resources/sphinx-tiny/heldout")
BOX = re.compile(r"\[([0-9.,;\s]+)\]")
POINT = re.compile(r"([a-z ]+)\[([0-9.]+),([0-9.]+)\]")


def read_safetensors(path):
    """The float32 tensors of a file export.write_safetensors wrote."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        raw = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(raw[a:b], dtype={"F32": np.float32}[meta["dtype"]]).reshape(meta["shape"])
    return out


def load(checkpoint):
    """(model, config, tokenizer) from train.py's --out directory, or from the committed files when None."""
    if checkpoint is not None:
        model, cfg, tok, _ = load_checkpoint(checkpoint)
        return model, cfg, tok
    with open(os.path.join(MODEL_DIR, "model.json")) as f:
        manifest = json.load(f)
    cfg = Config(**manifest["decoder"], **manifest["vision"])
    model = SphinxTiny(cfg)
    weights = read_safetensors(os.path.join(MODEL_DIR, "weights.safetensors"))
    with torch.no_grad():
        for name, p in model.named_weights().items():
            p.copy_(torch.from_numpy(weights[name].copy()))
    with open(os.path.join(MODEL_DIR, "tokenizer.json")) as f:
        tok = Tokenizer([tuple(m.split(" ")) for m in json.load(f)["model"]["merges"]])
    model.eval()
    return model, cfg, tok


@torch.no_grad()
def answer_all(model, cfg, tok, items, max_new, batch=25):
    """items: (image path, question) → greedy answers, up to the stop string."""
    out = []
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        pixels = np.concatenate([data.views(Image.open(p).convert("RGB"), cfg) for p, _ in chunk])
        embeds = model.encode_images(torch.from_numpy(pixels)).reshape(len(chunk), cfg.tokens_per_image, cfg.hidden_size)
        prompts = [[data.BOS] + [data.IMAGE] * cfg.tokens_per_image + tok.encode(data.prompt_text([(q, "")])) for _, q in chunk]
        generated = [[] for _ in chunk]
        done = [False] * len(chunk)
        for _ in range(max_new):
            seqs = [p + g for p, g in zip(prompts, generated)]
            length = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), length), PAD, dtype=torch.long)
            for b, s in enumerate(seqs):  # left-aligned; read each row's logits at its own end
                ids[b, :len(s)] = torch.tensor(s)
            logits = model.decode(ids, embeds)
            for b, s in enumerate(seqs):
                if not done[b]:
                    generated[b].append(int(torch.argmax(logits[b, len(s) - 1])))
                    if tok.decode(generated[b]).endswith("\n###"):
                        done[b] = True
            if all(done):
                break
        out += [tok.decode(g).split("\n###")[0].strip() for g in generated]
    return out


def boxes(text):
    found = []
    for group in BOX.findall(text):
        for part in group.split(";"):
            v = [float(x) for x in part.split(",") if x.strip()]
            if len(v) == 4:
                found.append(v)
    return found


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detection_ok(truth, answer):
    found = boxes(answer)
    if len(found) != len(truth):
        return 0
    used = [False] * len(found)
    for t in truth:
        best = max((j for j in range(len(found)) if not used[j] and iou(t, found[j]) >= 0.5),
                   key=lambda j: iou(t, found[j]), default=None)
        if best is None:
            return 0
        used[best] = True
    return 1


def pck(entry, answer, names):
    person = entry["pose"]["box"]
    threshold = 0.1 * max(person[2] - person[0], person[3] - person[1])
    found = {name.strip(): (float(x), float(y)) for name, x, y in POINT.findall(answer)}
    hits = 0
    for name, (tx, ty) in zip(names, entry["pose"]["keypoints"]):
        if name in found and ((found[name][0] - tx) ** 2 + (found[name][1] - ty) ** 2) ** 0.5 <= threshold:
            hits += 1
    return hits, len(names)


def main():
    ap = argparse.ArgumentParser()
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="train.py's --out directory")
    which.add_argument("--committed", action="store_true", help="the weights in the runtime jar's resources")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--tasks", default="referring,detection,pose,caption")
    ap.add_argument("--show", type=int, default=0, help="print this many answers per task")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg, tok = load(args.checkpoint)
    with open(os.path.join(HELDOUT, "heldout.json")) as f:
        heldout = json.load(f)
    scenes = heldout["scenes"][:args.limit]
    scores = {}
    for task in args.tasks.split(","):
        entries = [e for e in scenes if task in e]
        items = [(os.path.join(HELDOUT, e["image"]), e[task]["question"]) for e in entries]
        answers = answer_all(model, cfg, tok, items, max_new=260 if task == "pose" else 90)
        for e, a in list(zip(entries, answers))[:args.show]:
            print("  %s | %s\n    truth %s" % (e[task]["question"][-60:], a, e[task].get("answer")))
        if task == "referring":
            scores[task] = np.mean([1 if boxes(a) and iou(boxes(a)[0], e[task]["box"]) >= 0.5 else 0
                                    for e, a in zip(entries, answers)])
        elif task == "detection":
            scores[task] = np.mean([detection_ok(e[task]["boxes"], a) for e, a in zip(entries, answers)])
        elif task == "pose":
            hits = [pck(e, a, heldout["keypoints"]) for e, a in zip(entries, answers)]
            scores[task] = sum(h for h, _ in hits) / max(1, sum(n for _, n in hits))
        elif task == "caption":
            named = [(o["phrase"] in a) for e, a in zip(entries, answers) for o in e["objects"]]
            scores[task] = float(np.mean(named))
        print("%s (%d): %.3f" % (task, len(entries), scores[task]), flush=True)
    print(json.dumps(scores))


if __name__ == "__main__":
    main()
