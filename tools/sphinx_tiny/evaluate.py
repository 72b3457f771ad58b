"""Scores a checkpoint (or the committed weights) on the held-out set in PyTorch, greedy, as the node would.

  /usr/bin/python3 tools/sphinx_tiny/evaluate.py --state [DIR] [--limit 100] [--tasks referring,detection]
  /usr/bin/python3 tools/sphinx_tiny/evaluate.py --committed [--heldout-files]

The metrics follow the Java ModelAccuracyTest (the one that counts): referring Acc@0.5 on the first box;
detection = right count and every box matched at IoU >= 0.5; PCK@0.1 of the person box's longer side; caption
object recall. For watching training without building a bundle. Decoding is the training's fan-out: the
prefix (BOS, image, system text) once per scene, then each question and its answer so far recomputed per
token (short, so no KV cache is needed). Scenes are held-out.scene_entry(i), drawn in memory by the current
scene code; --heldout-files reads the committed PNG set instead (the one ModelAccuracyTest uses).
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
import heldout  # noqa: E402
import scenes as scenes_mod  # noqa: E402
from export import MODEL_DIR, ROOT  # noqa: E402
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


def load_state(directory):
    """(model in eval mode, config, tokenizer, step) from train.py's state folder."""
    from export import load_state as load
    model, cfg, tok, record = load(directory)
    return model, cfg, tok, record["vision_steps"] + record["steps"]  # the record counts the two stages apart


def load_committed():
    """(model, config, tokenizer) of the committed files in the runtime jar's resources."""
    with open(os.path.join(MODEL_DIR, "model.json")) as f:
        manifest = json.load(f)
    cfg = Config(**manifest["decoder"], **manifest["vision"])
    model = SphinxTiny(cfg)
    weights = read_safetensors(os.path.join(MODEL_DIR, "weights.safetensors"))
    with torch.no_grad():
        for name, p in model.named_weights().items():
            p.copy_(torch.from_numpy(weights[name].copy()))
    with open(os.path.join(MODEL_DIR, "tokenizer.json")) as f:
        spec = json.load(f)
    coordinates = any(not t["special"] for t in spec["added_tokens"])
    tok = Tokenizer([tuple(m.split(" ")) for m in spec["model"]["merges"]], coordinates)
    model.eval()
    return model, cfg, tok


@torch.no_grad()
def answer_all(model, cfg, tok, items, max_new, batch=40):
    """items: (PIL image, question) → greedy answers, up to the stop string."""
    out = []
    prefix = data.prefix_ids(tok, cfg)
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        pixels = np.concatenate([data.views(image, cfg) for image, _ in chunk])
        embeds = model.encode_images(torch.from_numpy(pixels)).reshape(len(chunk), cfg.tokens_per_image, cfg.hidden_size)
        cache = model.prefix_cache(torch.tensor([prefix] * len(chunk)), embeds)
        heads = [tok.encode("\n" + data.USER + q + "\n" + data.ASSISTANT) for _, q in chunk]
        generated = [[] for _ in chunk]
        live = list(range(len(chunk)))
        for _ in range(max_new):
            seqs = [heads[b] + generated[b] for b in live]
            length = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), length), PAD, dtype=torch.long)
            for r, s in enumerate(seqs):  # right-padded; read each row's logits at its own end
                ids[r, :len(s)] = torch.tensor(s)
            logits = model.decode_suffixes(cache, torch.tensor(live), ids)
            still = []
            for r, b in enumerate(live):
                generated[b].append(int(torch.argmax(logits[r, len(seqs[r]) - 1])))
                if not tok.decode(generated[b]).endswith("\n###"):
                    still.append(b)
            live = still
            if not live:
                break
        out += [tok.decode(g).split("\n###")[0].strip() for g in generated]
    return out


def heldout_scenes(n):
    """(image, entry) of the first n held-out scenes, drawn by the current scene code."""
    return [heldout.scene_entry(i) for i in range(n)]


def heldout_files(n):
    """(image, entry) of the committed held-out set (server test resources)."""
    with open(os.path.join(HELDOUT, "heldout.json")) as f:
        entries = json.load(f)["scenes"][:n]
    return [(Image.open(os.path.join(HELDOUT, e["image"])).convert("RGB"), e) for e in entries]


def score_scenes(model, cfg, tok, scenes, tasks=("referring", "detection", "pose", "caption"), show=0):
    """{task: score} with ModelAccuracyTest's metrics over (image, entry) pairs."""
    scores = {}
    for task in tasks:
        chosen = [(img, e) for img, e in scenes if task in e]
        items = [(img, e[task]["question"]) for img, e in chosen]
        answers = answer_all(model, cfg, tok, items, max_new=260 if task == "pose" else 90)
        entries = [e for _, e in chosen]
        for e, a in list(zip(entries, answers))[:show]:
            print("  %s | %s\n    truth %s" % (e[task]["question"][-60:], a, e[task].get("answer")))
        if task == "referring":
            scores[task] = np.mean([1 if boxes(a) and iou(boxes(a)[0], e[task]["box"]) >= 0.5 else 0
                                    for e, a in zip(entries, answers)])
        elif task == "detection":
            scores[task] = np.mean([detection_ok(e[task]["boxes"], a) for e, a in zip(entries, answers)])
        elif task == "pose":
            hits = [pck(e, a, scenes_mod.KEYPOINTS) for e, a in zip(entries, answers)]
            scores[task] = sum(h for h, _ in hits) / max(1, sum(n for _, n in hits))
        elif task == "caption":
            named = [(o["phrase"] in a) for e, a in zip(entries, answers) for o in e["objects"]]
            scores[task] = float(np.mean(named))
        scores[task] = round(float(scores[task]), 3)
    return scores


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def boxes(text):
    found = []
    for group in BOX.findall(text):
        for part in group.split(";"):
            v = [_number(x) for x in part.split(",") if x.strip()]
            if len(v) == 4 and None not in v:
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
    found = {}
    for name, x, y in POINT.findall(answer):
        if _number(x) is not None and _number(y) is not None:  # a malformed point ("0.670.57") is a miss
            found[name.strip()] = (_number(x), _number(y))
    hits = 0
    for name, (tx, ty) in zip(names, entry["pose"]["keypoints"]):
        if name in found and ((found[name][0] - tx) ** 2 + (found[name][1] - ty) ** 2) ** 0.5 <= threshold:
            hits += 1
    return hits, len(names)


def main():
    ap = argparse.ArgumentParser()
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--state", nargs="?", const=os.path.join(HERE, "state"), help="train.py's state folder")
    which.add_argument("--committed", action="store_true", help="the weights in the runtime jar's resources")
    ap.add_argument("--heldout-files", action="store_true", help="the committed PNG set, not scenes drawn now")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--tasks", default="referring,detection,pose,caption")
    ap.add_argument("--show", type=int, default=0, help="print this many answers per task")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.committed:
        model, cfg, tok = load_committed()
    else:
        model, cfg, tok, step = load_state(args.state)
        print("state at step %d" % step)
    scenes = heldout_files(args.limit) if args.heldout_files else heldout_scenes(args.limit)
    print(json.dumps(score_scenes(model, cfg, tok, scenes, args.tasks.split(","), args.show)))


if __name__ == "__main__":
    main()
