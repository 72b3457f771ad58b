"""Trains SPHINX-tiny on generated scenes; writes a checkpoint that export.py turns into models/sphinx-tiny.

  /usr/bin/python3 tools/sphinx_tiny/train.py --out /tmp/sphinx-tiny-train --vision-minutes 8 --minutes 62 --seed 1

Two stages, both with the training-only dense heads (model.AuxHeads) on the vision output:
  A. the vision encoder alone, on the dense targets, batches of 64 images (cheap: no decoder);
  B. everything, language loss on the answers + the dense loss; the first quarter on scenes of at most
     three objects (a curriculum), then 1-6.
Trained with the language loss alone, the model learned the answer formats and ignored the image (after 500
steps its loss was the same with another example's image: docs/MODEL.md); the dense heads fix that.

Deterministic apart from the wall-clock budgets (each stage's step count is fixed after timing its first
steps, and recorded in the checkpoint). Training scenes use seeds 0, 1, 2, ... (stage A from VISION_SEED_BASE);
held-out scenes (heldout.py) use seeds from HELDOUT_SEED_BASE, which training never reaches.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data  # noqa: E402
import scenes  # noqa: E402
import tokenizer as tokenizer_mod  # noqa: E402
from model import AuxHeads, Config, SphinxTiny  # noqa: E402

HELDOUT_SEED_BASE = 1_000_000_000
# Attention heads (layer, query head) trained to look at the image tokens of the object the next answer token
# is about (the pointer loss): retrieval the language loss alone did not teach in the time there is.
POINTER_HEADS = ((1, 0), (2, 0))
VISION_SEED_BASE = 500_000_000
TOKENIZER_SCENES = 3000
MAX_MERGES = 512 - len(tokenizer_mod.SPECIAL_TOKENS) - 256


def build_tokenizer():
    texts = []
    for s in range(TOKENIZER_SCENES):
        scene = scenes.make_scene(HELDOUT_SEED_BASE * 2 + s)  # its own seeds: neither training nor held-out
        for q, a in scenes.conversation(scene, random.Random(s), max_turns=20):
            texts.append(data.USER + q + "\n" + data.ASSISTANT + " " + a + "\n###")
    texts += [data.SYSTEM] * 1000
    return tokenizer_mod.train(texts, MAX_MERGES)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vision-minutes", type=float, default=8)
    ap.add_argument("--minutes", type=float, default=62)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vision-batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-turns", type=int, default=5)
    ap.add_argument("--pointer-weight", type=float, default=0.5)
    ap.add_argument("--init", help="start from this checkpoint.pt (its model weights; the dense heads start afresh)")
    ap.add_argument("--curriculum", type=float, default=0.25, help="share of joint steps on scenes of at most 3 objects")
    ap.add_argument("--stop-after", type=int, default=0, help="stop after this many joint steps (0: run the budget)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    t0 = time.time()
    tok = build_tokenizer()
    print("tokenizer: %d tokens (%.1f s)" % (len(tok), time.time() - t0), flush=True)
    cfg = Config(vocab_size=len(tok))
    data.check_segmentation(tok, cfg, range(200))
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        f.write(tok.to_json())
    with open(os.path.join(args.out, "merges.json"), "w") as f:
        json.dump(tok.merges, f)

    model = SphinxTiny(cfg, seed=args.seed)
    if args.init:
        init = torch.load(args.init)
        model.load_state_dict(init["state"])
        print("initialised from %s: %s" % (args.init, init["training"]), flush=True)
    aux = AuxHeads(cfg)
    print("parameters: %d (+%d training-only)" % (sum(p.numel() for p in model.parameters()),
                                                  sum(p.numel() for p in aux.parameters())), flush=True)
    record = {"seed": args.seed, "batch": args.batch, "vision_batch": args.vision_batch, "lr": args.lr,
              "command": "python3 tools/sphinx_tiny/train.py --vision-minutes %g --minutes %g --seed %d --batch %d --lr %g "
                         "--pointer-weight %g --curriculum %g%s" % (args.vision_minutes, args.minutes, args.seed, args.batch, args.lr,
                                                    args.pointer_weight, args.curriculum,
                                                    " --init " + args.init if args.init else "")}
    start = time.time()

    # Stage A: the vision encoder on the dense targets.
    vision_params = [p for n, p in model.named_parameters() if not _is_decoder(n)] + list(aux.parameters())
    opt = _adamw(vision_params, args.lr)
    seed = VISION_SEED_BASE

    def vision_step(step, total):
        nonlocal seed
        _set_lr(opt, args.lr, step, total, warmup=50)
        pixels, targets = data.vision_batch(range(seed, seed + args.vision_batch), cfg)
        seed += args.vision_batch
        loss = aux.loss(model.encode_images(pixels), targets)
        _update(opt, loss, vision_params)
        return loss.item()

    steps_a = _run("vision", vision_step, args.vision_minutes * 60) if args.vision_minutes > 0 else 0
    record.update({"vision_steps": steps_a, "vision_seconds": round(time.time() - start)})
    if args.init:  # what the starting checkpoint had been through
        previous = init["training"]
        record["vision_steps"] += previous.get("vision_steps", 0)
        record["vision_seconds"] += previous.get("vision_seconds", 0)
        record["earlier_steps"] = previous.get("steps", 0)
        record["earlier_seconds"] = previous.get("seconds", 0)

    # Stage B: everything; language loss on the answers plus the dense loss.
    params = list(model.parameters()) + list(aux.parameters())
    opt = _adamw(params, args.lr)
    seed = init["training"].get("scenes_seen", 0) if args.init else 0  # scenes not seen before
    holder = {}

    def joint_step(step, total):
        nonlocal seed
        _set_lr(opt, args.lr, step, total, warmup=150)
        max_objects = 3 if total and step < int(total * args.curriculum) else 6
        seeds = range(seed, seed + args.batch)
        seed += args.batch
        pixels, ids, labels, targets, pointer = data.batch(seeds, tok, cfg, args.max_turns, max_objects)
        embeds = model.encode_images(pixels)
        logits, attention = model.decode(ids, embeds.reshape(len(seeds), cfg.tokens_per_image, cfg.hidden_size),
                                         capture=POINTER_HEADS)
        lm = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), labels[:, 1:].reshape(-1), ignore_index=data.IGNORE)
        rows = pointer.sum(-1) > 0
        point = sum(-torch.log((a * pointer).sum(-1)[rows] + 1e-6).mean() for a in attention) / len(attention)
        loss = lm + 0.5 * aux.loss(embeds, targets) + args.pointer_weight * point
        holder["point"] = point.item()
        _update(opt, loss, params)
        holder["scenes"] = seed
        if args.stop_after and step + 1 >= args.stop_after:
            raise StopTraining()
        if step % 500 == 499:
            save(model, cfg, dict(record, steps=step + 1, scenes_seen=seed, seconds=round(time.time() - start)), args)
        return lm.item()

    try:
        steps_b = _run("joint", joint_step, args.minutes * 60, extra=lambda: "pointer %.3f" % holder["point"])
    except StopTraining:
        steps_b = args.stop_after
    record.update({"steps": steps_b, "scenes_seen": holder["scenes"], "seconds": round(time.time() - start)})
    save(model, cfg, record, args)
    print("done in %.0f s" % (time.time() - start), flush=True)


class StopTraining(Exception):
    """--stop-after reached."""


def _is_decoder(name):
    return name.startswith("layers") or name in ("embed_tokens", "final_norm", "lm_head")


def _adamw(params, lr):
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98))


def _set_lr(opt, peak, step, total, warmup):
    horizon = total or 10 ** 9
    lr = peak * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / horizon))))
    for g in opt.param_groups:
        g["lr"] = lr


def _update(opt, loss, params):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def _run(stage, step_fn, budget_seconds, timing_steps=20, extra=None):
    """Runs step_fn(step, total) until the step count fixed after timing the first steps is reached."""
    start = time.time()
    total = None
    step = 0
    ema = None
    while total is None or step < total:
        if total is None and step == timing_steps:
            total = max(step + 1, int(budget_seconds / ((time.time() - start) / timing_steps)))
            print("%s: %.2f s/step → %d steps" % (stage, (time.time() - start) / timing_steps, total), flush=True)
        loss = step_fn(step, total)
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        step += 1
        if step % 25 == 0:
            print("%s step %d/%s loss %.4f ema %.4f %.0f s %s" % (stage, step, total, loss, ema, time.time() - start,
                                                              extra() if extra else ""), flush=True)
    return step


def save(model, cfg, record, args):
    path = os.path.join(args.out, "checkpoint.pt")
    torch.save({"state": model.state_dict(), "config": cfg.to_dict(), "training": record}, path + ".tmp")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
