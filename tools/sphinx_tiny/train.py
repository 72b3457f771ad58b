"""Trains SPHINX-tiny on generated scenes, in runs that stop and resume; export.py turns the state into
models/sphinx-tiny.

  # a new run (writes the recipe, the tokenizer and step 0 into the state folder)
  /usr/bin/python3 tools/sphinx_tiny/train.py --fresh --minutes 130
  # every later working session: go on from the committed state for about 85 minutes
  /usr/bin/python3 tools/sphinx_tiny/train.py --minutes 85
  # a finished schedule goes on with a new segment (warm-up and cosine of its own) over new scenes
  /usr/bin/python3 tools/sphinx_tiny/train.py --extend 1500 --extend-lr 1e-3 --minutes 85

The state folder (default tools/sphinx_tiny/state/, committed; replaced, never accumulated) holds everything
a run needs to go on exactly where it stopped: weights, the training-only heads, the optimizer's moments
(bfloat16), the step, the recipe and the schedule (fixed by step count, never by timing), the tokenizer's
merges, and curves.jsonl (losses and held-out scores per task as training goes). Data is a function of the
step (scene seeds step·batch ...), so a resumed run sees the scenes an uninterrupted one would:
test_resume.py checks that two half-runs give the same state as one run.

The recipe (docs/MODEL.md, "The second recipe"):
  A. the vision encoder on the dense targets alone (vision_steps steps of vision_batch scenes); the encoder
     starts from the committed weights (init_vision) and stays frozen for the first FROZEN_HEAD_STEPS while
     the fresh heads learn, so random heads do not push gradients into a trained encoder;
  B. fan-out batches: each scene's prefix (BOS, image, system text) computed once and every question a
     single-turn suffix attending to it (10 % two-turn), language loss with coordinates weighted up and soft
     targets over neighbouring coordinate values, plus the dense loss and the pointer loss.
"""

import argparse
import json
import math
import os
import random
import signal
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import scenes  # noqa: E402
import tokenizer as tokenizer_mod  # noqa: E402
from heldout import HELDOUT_SEED_BASE  # noqa: E402
from model import AuxHeads, Config, SphinxTiny  # noqa: E402

VISION_SEED_BASE = 500_000_000
TOKENIZER_SCENES = 3000
MAX_MERGES = 512 - len(tokenizer_mod.SPECIAL_TOKENS) - 256
STATE_DIR = os.path.join(HERE, "state")
FROZEN_HEAD_STEPS = 50
# Attention heads (layer, query head) trained to look at the image tokens of the object the next answer token
# is about (the pointer loss): retrieval the language loss alone did not teach in the time there is.
POINTER_HEADS = ((1, 0), (2, 0))

DEFAULT_RECIPE = {
    "seed": 1,
    "batch": 8,              # scenes per step (each with up to `questions` suffixes)
    "questions": 6,
    "two_turn": 0.1,
    "lr": 2e-3,
    "warmup": 150,
    "vision_steps": 300,
    "vision_batch": 32,
    "steps": 2400,           # joint steps of the whole schedule (cosine to 10 % at the end)
    "pointer_weight": 0.5,
    "aux_weight": 0.5,
    "soft_sigma": 1.0,       # soft coordinate targets: half one-hot, half a Gaussian of this many bins
    "init_vision": "committed",
    "config": {},            # Config overrides (the toy size of test_resume.py)
    "save_every": 100,
    "eval_every": 500,
    "eval_scenes": 40,
}


def build_tokenizer():
    texts = []
    for s in range(TOKENIZER_SCENES):
        scene = scenes.make_scene(HELDOUT_SEED_BASE * 2 + s)  # its own seeds: neither training nor held-out
        for q, a in scenes.conversation(scene, random.Random(s), max_turns=20):
            texts.append(data.USER + q + "\n" + data.ASSISTANT + " " + a + "\n###")
    texts += [data.SYSTEM] * 1000
    return tokenizer_mod.train(texts, MAX_MERGES)


class Trainer:
    """One training run's live state, saved to and restored from a state folder."""

    def __init__(self, state_dir, recipe=None, log=print):
        self.dir = state_dir
        self.log = log
        if recipe is None:
            saved = _read_state(state_dir)
            self.recipe = saved["recipe"]
            self.tok = tokenizer_mod.Tokenizer([tuple(m) for m in saved["merges"]])
        else:
            saved = None
            self.recipe = dict(DEFAULT_RECIPE, **recipe)
            self.tok = build_tokenizer()
        r = self.recipe
        self.cfg = Config(**dict({"vocab_size": len(self.tok)}, **r["config"]))
        self.model = SphinxTiny(self.cfg, seed=r["seed"])
        self.aux = AuxHeads(self.cfg)
        self.params = list(self.model.parameters()) + list(self.aux.parameters())
        self.opt = _adamw(self.params, r["lr"])
        coords = torch.tensor(sorted(self.tok.coordinate_ids.values()))
        self.coord_first = int(coords[0])
        self.soft = _soft_targets(len(coords), r["soft_sigma"])
        self.step = 0
        self.stop_requested = False  # set by SIGTERM/SIGINT: stop at the next step boundary, saved
        self.seconds = 0.0
        self.sessions = []
        if saved is not None:
            self.model.load_state_dict(saved["model"])
            self.aux.load_state_dict(saved["aux"])
            opt = saved["opt"]
            for s in opt["state"].values():
                for k in ("exp_avg", "exp_avg_sq"):
                    s[k] = s[k].float()
            self.opt.load_state_dict(opt)
            self.step, self.seconds, self.sessions = saved["step"], saved["seconds"], saved["sessions"]
        else:
            torch.manual_seed(r["seed"])
            self.model.init_coordinate_rows(self.coord_first, len(coords), seed=r["seed"])
            if r["init_vision"] == "committed":
                _load_committed_vision(self.model)

    @property
    def total_steps(self):
        return self.recipe["vision_steps"] + self.recipe["steps"]

    # ---- schedule ------------------------------------------------------------------------------------------

    def lr(self, step):
        r = self.recipe
        if step < r["vision_steps"]:
            return r["lr"] * min(1.0, (step + 1) / 50)
        k = step - r["vision_steps"]
        for start, steps, peak, warmup in self.segments():
            if k < start + steps or start + steps == r["steps"]:
                j = k - start
                return peak * min(1.0, (j + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, j / steps))))
        raise AssertionError("no schedule segment holds joint step %d" % k)

    def segments(self):
        """The joint schedule: (first joint step, steps, peak lr, warm-up) per segment, each a warm-up and a
        cosine to 10 % of its peak. A new run has one; --extend appends another."""
        r = self.recipe
        return r.get("schedule") or [[0, r["steps"], r["lr"], r["warmup"]]]

    def extend(self, steps, peak, warmup):
        """Appends `steps` joint steps (new scenes: data follows the step) with their own warm-up and cosine."""
        r = self.recipe
        r["schedule"] = self.segments() + [[r["steps"], steps, peak, warmup]]
        r["steps"] += steps

    # ---- steps ---------------------------------------------------------------------------------------------

    def vision_step(self, step):
        r = self.recipe
        seeds = range(VISION_SEED_BASE + step * r["vision_batch"], VISION_SEED_BASE + (step + 1) * r["vision_batch"])
        pixels, targets = data.vision_batch(seeds, self.cfg, scenes.MAX_OBJECTS)
        if step < FROZEN_HEAD_STEPS and r["init_vision"] == "committed":
            with torch.no_grad():
                embeds = self.model.encode_images(pixels)
        else:
            embeds = self.model.encode_images(pixels)
        loss = self.aux.loss(embeds, targets)
        return loss, {"dense": loss.item()}

    def joint_step(self, step):
        r = self.recipe
        k = step - r["vision_steps"]
        seeds = range(k * r["batch"], (k + 1) * r["batch"])
        pixels, prefixes, targets, buckets = data.fanout_batch(seeds, self.tok, self.cfg, r["questions"], r["two_turn"])
        embeds = self.model.encode_images(pixels)
        cache = self.model.prefix_cache(prefixes, embeds.reshape(len(seeds), self.cfg.tokens_per_image, self.cfg.hidden_size))
        lm_sum, w_sum, point_sum, point_n = 0.0, 0.0, 0.0, 0
        stats = {}
        for b in buckets:
            logits, attention = self.model.decode_suffixes(cache, b["owner"], b["ids"], capture=POINTER_HEADS)
            ce, hit, err, is_coord = self.token_losses(logits, b["target"])
            lm_sum = lm_sum + (ce * b["weight"]).sum()
            w_sum += float(b["weight"].sum())
            rows = b["pointer"].sum(-1) > 0
            if rows.any():
                for a in attention:
                    point_sum = point_sum - torch.log((a * b["pointer"]).sum(-1)[rows] + 1e-6).sum()
                point_n += int(rows.sum()) * len(attention)
            _task_stats(stats, b, ce.detach(), hit, err, is_coord)
        lm = lm_sum / w_sum
        point = point_sum / max(1, point_n)
        dense = self.aux.loss(embeds, targets)
        loss = lm + r["aux_weight"] * dense + r["pointer_weight"] * point
        stats.update({"lm": lm.item(), "dense": dense.item(), "point": float(point)})
        return loss, stats

    def token_losses(self, logits, target):
        """Per position: the loss (soft over coordinate values where the target is one), whether the argmax
        is the target, the argmax's coordinate error, and which targets are coordinates."""
        logp = torch.log_softmax(logits, dim=-1)
        safe = target.clamp(min=0)
        hard = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        n = self.soft.shape[0]
        index = (safe - self.coord_first).clamp(0, n - 1)
        is_coord = (target >= self.coord_first) & (target < self.coord_first + n)
        soft = -(logp[..., self.coord_first:self.coord_first + n] * self.soft[index]).sum(-1)
        ce = torch.where(is_coord, soft, hard) * (target >= 0)
        pred = logits.detach().argmax(-1)
        hit = (pred == target) & (target >= 0)
        err = ((pred - target).abs().float() / (n - 1)).where(is_coord & (pred >= self.coord_first) & (pred < self.coord_first + n),
                                                              torch.ones(()))
        return ce, hit, err, is_coord

    def run(self, until_step=None, deadline=None):
        """Trains until until_step (default: the schedule's end) or, at a step boundary, past deadline
        (time.time()); saves every save_every steps and at the end."""
        r = self.recipe
        until = self.total_steps if until_step is None else min(until_step, self.total_steps)
        started = time.time()
        first = self.step
        ema = {}
        while self.step < until and (deadline is None or time.time() < deadline) and not self.stop_requested:
            t0 = time.time()
            for g in self.opt.param_groups:
                g["lr"] = self.lr(self.step)
            stage = "vision" if self.step < r["vision_steps"] else "joint"
            loss, stats = self.vision_step(self.step) if stage == "vision" else self.joint_step(self.step)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.step += 1
            self.seconds += time.time() - t0
            for k, v in stats.items():
                ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
            if self.step % 25 == 0:
                self.log("%s step %d/%d %.2f s/step %s" % (stage, self.step, self.total_steps, (time.time() - started) / (self.step - first),
                                                         " ".join("%s %.3f" % kv for kv in sorted(ema.items()))))
            if self.step % 50 == 0:
                self._curve({"step": self.step, "stage": stage, **{k: round(v, 4) for k, v in ema.items()}})
            if self.step % r["save_every"] == 0 or self.step == until:
                self.save()
            if stage == "joint" and (self.step - r["vision_steps"]) % r["eval_every"] == 0:
                self.evaluate()
        self.sessions.append({"from": first, "to": self.step, "seconds": round(time.time() - started)})
        self.save()

    def evaluate(self):
        import evaluate  # the held-out scores, through the same fan-out greedy decoding
        t0 = time.time()
        self.model.eval()
        scores = evaluate.score_scenes(self.model, self.cfg, self.tok, evaluate.heldout_scenes(self.recipe["eval_scenes"]))
        self.model.train()
        self.log("eval at step %d: %s (%.0f s)" % (self.step, json.dumps(scores), time.time() - t0))
        self._curve({"step": self.step, "eval": scores})

    # ---- state ---------------------------------------------------------------------------------------------

    def save(self):
        """Writes the state folder's parts. The moments are kept as bfloat16 on disk, and rounded to it in the
        live optimizer too, so that a run resumed from the files and one that never stopped stay identical."""
        opt = self.opt.state_dict()
        packed = {"state": {}, "param_groups": opt["param_groups"]}
        for i, s in opt["state"].items():
            packed["state"][i] = dict(s)
            for k in ("exp_avg", "exp_avg_sq"):
                s[k].copy_(s[k].bfloat16().float())
                packed["state"][i][k] = s[k].bfloat16()
        _write_state(self.dir, {"recipe": self.recipe, "merges": self.tok.merges, "config": self.cfg.to_dict(),
                                "model": self.model.state_dict(), "aux": self.aux.state_dict(), "opt": packed,
                                "step": self.step, "seconds": self.seconds, "sessions": self.sessions})

    def _curve(self, record):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "curves.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")


# The state folder's files: each under 5 MiB (the repository's limit for one file), each holding the step it
# was written at, so that a folder whose files come from different saves is refused instead of mixed.
STATE_PARTS = ("model.pt", "aux_heads.pt", "adam_exp_avg.pt", "adam_exp_avg_sq.pt", "trainer.pt")


def _write_state(directory, state):
    opt = state["opt"]
    parts = {
        "model.pt": state["model"],
        "aux_heads.pt": state["aux"],
        "adam_exp_avg.pt": {i: s["exp_avg"] for i, s in opt["state"].items()},
        "adam_exp_avg_sq.pt": {i: s["exp_avg_sq"] for i, s in opt["state"].items()},
        "trainer.pt": dict({k: v for k, v in state.items() if k not in ("model", "aux", "opt")},
                           adam_steps={i: s["step"] for i, s in opt["state"].items()}, param_groups=opt["param_groups"]),
    }
    os.makedirs(directory, exist_ok=True)
    for name in STATE_PARTS:
        path = os.path.join(directory, name)
        torch.save({"step": state["step"], "part": parts[name]}, path + ".tmp")
    for name in STATE_PARTS:  # replaced only once every part is written
        path = os.path.join(directory, name)
        os.replace(path + ".tmp", path)


def _read_state(directory):
    loaded = {}
    for name in STATE_PARTS:
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            raise FileNotFoundError("%s: no training state (%s missing); start one with --fresh" % (directory, name))
        loaded[name] = torch.load(path)
    steps = {name: part["step"] for name, part in loaded.items()}
    if len(set(steps.values())) != 1:
        raise RuntimeError("%s: state files from different saves %s; restore them from git" % (directory, steps))
    trainer = loaded["trainer.pt"]["part"]
    m, v = loaded["adam_exp_avg.pt"]["part"], loaded["adam_exp_avg_sq.pt"]["part"]
    opt = {"state": {i: {"step": trainer["adam_steps"][i], "exp_avg": m[i], "exp_avg_sq": v[i]} for i in m},
           "param_groups": trainer["param_groups"]}
    state = {k: val for k, val in trainer.items() if k not in ("adam_steps", "param_groups")}
    state.update(model=loaded["model.pt"]["part"], aux=loaded["aux_heads.pt"]["part"], opt=opt)
    return state


def _task_stats(stats, bucket, ce, hit, err, is_coord):
    answer = bucket["target"] >= 0
    for r, task in enumerate(bucket["task"]):
        m = answer[r]
        c = is_coord[r]
        stats["ce_" + task] = float(ce[r][m].mean())
        if c.any():
            stats["coord_acc_" + task] = float(hit[r][c].float().mean())
            stats["coord_err_" + task] = float(err[r][c].mean())


def _soft_targets(n, sigma):
    """[n, n]: row i the target distribution over coordinate values for true value i."""
    idx = torch.arange(n, dtype=torch.float32)
    gauss = torch.exp(-((idx.view(1, -1) - idx.view(-1, 1)) ** 2) / (2 * sigma * sigma))
    gauss = gauss / gauss.sum(-1, keepdim=True)
    return 0.5 * torch.eye(n) + 0.5 * gauss


def _load_committed_vision(model):
    """The committed model's vision encoder (its shapes are this one's): a head start on seeing shapes."""
    import evaluate
    committed = evaluate.read_safetensors(os.path.join(evaluate.MODEL_DIR, "weights.safetensors"))
    with torch.no_grad():
        for name, p in model.named_weights().items():
            if not _is_decoder(name) and name in committed and tuple(committed[name].shape) == tuple(p.shape):
                p.copy_(torch.from_numpy(committed[name].copy()))


def _is_decoder(name):
    return name.startswith("layers") or name in ("embed_tokens", "final_norm", "lm_head")


def _adamw(params, lr):
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", default=STATE_DIR)
    ap.add_argument("--fresh", action="store_true", help="start a new run (replaces the state folder's contents)")
    ap.add_argument("--steps", type=int, help="with --fresh: joint steps of the schedule")
    ap.add_argument("--minutes", type=float, default=85, help="this session's budget; stops at a step boundary")
    ap.add_argument("--until-step", type=int)
    ap.add_argument("--extend", type=int, help="append this many joint steps to a finished (or running) schedule")
    ap.add_argument("--extend-lr", type=float, default=1e-3, help="with --extend: the new segment's peak lr")
    ap.add_argument("--extend-warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.fresh:
        for name in STATE_PARTS + ("curves.jsonl",):
            if os.path.exists(os.path.join(args.state, name)):
                os.remove(os.path.join(args.state, name))
        trainer = Trainer(args.state, {"steps": args.steps} if args.steps else {})
        data.check_fanout_segmentation(trainer.tok, trainer.cfg, range(200))
        trainer.save()
    else:
        trainer = Trainer(args.state)
        if args.extend:
            trainer.extend(args.extend, args.extend_lr, args.extend_warmup)
            trainer.save()
    print("step %d of %d, recipe %s" % (trainer.step, trainer.total_steps, json.dumps(trainer.recipe)), flush=True)
    trainer.log = lambda m: print(m, flush=True)

    def request_stop(signum, _frame):
        print("signal %d: stopping after this step" % signum, flush=True)
        trainer.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    trainer.run(args.until_step, time.time() + args.minutes * 60)
    print("stopped at step %d of %d (%.0f s of training in all)" % (trainer.step, trainer.total_steps, trainer.seconds), flush=True)


if __name__ == "__main__":
    main()
