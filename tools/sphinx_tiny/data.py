"""Training examples: a scene's five views, its dense targets, and its questions as fan-out suffixes.

Views follow the node's ViewPreprocessor: centred pad with the bundle's pad colour to a square, bicubic
resize to image_size, CLIP normalisation; view 0 is the whole image resized to view_size, views 1..4 the
2x2 tiles, row-major. (The node resizes the global view from the normalised floats, Pillow here from the
8-bit image: the difference is below a grey level.)

The conversation text is rendered exactly as the node's PromptRenderer renders conv_v1_2:
  system + Σ("### Human: " + q + "\\n" + "### Assistant:" + " " + a + "\\n") + "###"
and the labels are the tokens of each " " + a + "\\n###": the model learns to end an answer with the stop
string "\\n###", which the node holds back and stops on. A training step computes each scene's prefix (BOS,
image, system text) once and its questions as suffixes attending to it (fanout_batch).
"""

import math
import random

import numpy as np
import torch
from PIL import Image

import scenes
from tokenizer import BOS, IMAGE

SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the human's questions.\n\n")
USER = "### Human: "
ASSISTANT = "### Assistant:"
PAD_RGB = (122, 116, 104)
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)
IGNORE = -100


def views(image, cfg):
    """[5, 3, S, S] float32 views of a PIL image."""
    w, h = image.size
    m = max(w, h)
    square = Image.new("RGB", (m, m), PAD_RGB)
    square.paste(image, ((m - w) // 2, (m - h) // 2))
    big = square.resize((cfg.image_size, cfg.image_size), Image.BICUBIC)
    small = big.resize((cfg.view_size, cfg.view_size), Image.BICUBIC)

    def norm(img):
        return (np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0 - MEAN) / STD

    s = cfg.view_size
    big_n = norm(big)
    out = [norm(small)]
    for r in range(cfg.grid):
        for c in range(cfg.grid):
            out.append(big_n[:, r * s:(r + 1) * s, c * s:(c + 1) * s])
    return np.stack(out).astype(np.float32)


def prompt_text(turns):
    """The node's rendering of a conversation whose last question awaits an answer."""
    text = SYSTEM
    for q, a in turns[:-1]:
        text += USER + q + "\n" + ASSISTANT + " " + a + "\n"
    return text + USER + turns[-1][0] + "\n" + ASSISTANT


def vision_batch(seeds, cfg, max_objects=scenes.MAX_OBJECTS):
    """Pixels and dense targets only: the vision encoder's pre-training."""
    pixels, targets = [], []
    for s in seeds:
        scene = scenes.make_scene(s, max_objects)
        pixels.append(views(scene.image, cfg))
        targets.append(dense_targets(scene, cfg))
    return torch.from_numpy(np.concatenate(pixels)), stack_targets(targets)


def full_text(turns):
    text = SYSTEM
    for q, a in turns:
        text += USER + q + "\n" + ASSISTANT + " " + a + "\n"
    return text + "###"


# ---- dense targets for the auxiliary training heads (training only; nothing of this is exported) ------------

CLASSES = ["none"] + scenes.SHAPES + ["person"]
COLOUR_IDS = {c: i + 1 for i, c in enumerate(scenes.COLOURS)}
SIZE_IDS = {"small": 1, "large": 2}


def dense_targets(scene, cfg):
    """Per patch token of the five views: what covers its centre (class, colour, size); per global-view patch:
    whether an object's box centre lies in it, and then that object's box (and a person's keypoints)."""
    g = cfg.view_size // cfg.patch_size
    n = g * g
    boxes = [scene.box_norm(o) for o in scene.objects]
    area = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    cls = np.zeros((cfg.num_views, n), dtype=np.int64)
    colour = np.zeros((cfg.num_views, n), dtype=np.int64)
    size = np.zeros((cfg.num_views, n), dtype=np.int64)
    view_origin = [(0.0, 0.0, 1.0)] + [((c / cfg.grid), (r / cfg.grid), 1.0 / cfg.grid)
                                       for r in range(cfg.grid) for c in range(cfg.grid)]
    for v, (ox, oy, span) in enumerate(view_origin):
        for p in range(n):
            cx = ox + span * ((p % g) + 0.5) / g
            cy = oy + span * ((p // g) + 0.5) / g
            best = None
            for i, b in enumerate(boxes):
                if b[0] <= cx <= b[2] and b[1] <= cy <= b[3] and (best is None or area[i] < area[best]):
                    best = i
            if best is not None:
                o = scene.objects[best]
                cls[v, p] = CLASSES.index(o.kind)
                colour[v, p] = COLOUR_IDS.get(o.colour, 0)
                size[v, p] = SIZE_IDS.get(o.size, 0)
    view_object = np.full((cfg.num_views, n), -1, dtype=np.int64)  # per view: the smallest object covering a patch
    tile_box = np.zeros((cfg.num_views - 1, n, 4), dtype=np.float32)
    for v, (ox, oy, span) in enumerate(view_origin):
        for p in range(n):
            cx = ox + span * ((p % g) + 0.5) / g
            cy = oy + span * ((p // g) + 0.5) / g
            covering = [i for i, b in enumerate(boxes) if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]]
            if covering:
                i = min(covering, key=lambda k: area[k])
                view_object[v, p] = i
                if v > 0:
                    b = boxes[i]
                    tile_box[v - 1, p] = [(b[0] - ox) / span, (b[1] - oy) / span, (b[2] - ox) / span, (b[3] - oy) / span]
    owner = np.zeros(n, dtype=np.float32)
    obj_map = np.full(n, -1, dtype=np.int64)  # global view: the object a patch is about (owner, else covering)
    for p in range(n):
        cx, cy = ((p % g) + 0.5) / g, ((p // g) + 0.5) / g
        covering = [i for i, b in enumerate(boxes) if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]]
        if covering:
            obj_map[p] = min(covering, key=lambda i: area[i])
    for i in sorted(range(len(boxes)), key=lambda k: -area[k]):  # smaller objects win a shared patch
        b = boxes[i]
        c = min(g - 1, int((b[0] + b[2]) / 2 * g))
        r = min(g - 1, int((b[1] + b[3]) / 2 * g))
        owner[r * g + c] = 1.0
        obj_map[r * g + c] = i
    box = np.zeros((n, 4), dtype=np.float32)
    digits = np.zeros((n, 8), dtype=np.int64)
    is_person = np.zeros(n, dtype=np.float32)
    keypoints = np.zeros((n, 34), dtype=np.float32)
    for p in range(n):
        i = obj_map[p]
        if i < 0:
            continue
        b = boxes[i]
        box[p] = b
        for k, value in enumerate(b):
            text = "%.2f" % min(value, 0.99)
            digits[p, 2 * k] = int(text[2])
            digits[p, 2 * k + 1] = int(text[3])
        o = scene.objects[i]
        if o.kind == "person":
            is_person[p] = 1.0
            keypoints[p] = np.array([[scene.nx(x), scene.ny(y)] for x, y in o.keypoints], dtype=np.float32).reshape(-1)
    view_object[0] = obj_map  # the global view's map includes the owner patches
    return {"cls": cls, "colour": colour, "size": size, "owner": owner, "object": obj_map, "box": box,
            "digits": digits, "is_person": is_person, "keypoints": keypoints, "view_object": view_object,
            "tile_box": tile_box}


def stack_targets(targets):
    return {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}


# ---- fan-out batches (the second recipe): one prefix per scene, single-turn questions as suffixes ----------

TASKS = ["caption", "detection", "counting", "referring", "pose"]
COORDINATE_WEIGHT = 3.0  # a coordinate token's loss weight against 1 for every other answer token


def prefix_ids(tok, cfg):
    """BOS, the image rows and the system text but its last newline: what every question about a scene shares.
    (The GPT-2 pre-tokenizer splits "\n\n###" as "\n", "\n", "###" but a text ending "\n\n" as one "\n\n",
    so the cut falls between the two newlines, where both texts have a boundary.)"""
    return [BOS] + [IMAGE] * cfg.tokens_per_image + tok.encode(SYSTEM[:-1])


def scene_tasks(scene, rng):
    """(task, question, answer) for a scene, shuffled: a caption, two detections (mostly of kinds present),
    a count, up to three referring expressions and a pose per person."""
    kinds = sorted({o.kind for o in scene.objects})
    out = [("caption",) + scenes.caption(scene)]
    for _ in range(2):
        kind = rng.choice(kinds) if rng.random() < 0.75 else rng.choice(scenes.SHAPES + ["person"])
        out.append(("detection",) + scenes.detection(scene, kind))
    kind = rng.choice(kinds) if rng.random() < 0.7 else rng.choice(scenes.SHAPES + ["person"])
    out.append(("counting",) + scenes.counting(scene, kind))
    refs = scenes.referring_expressions(scene)
    for expr, obj in rng.sample(refs, min(3, len(refs))):
        out.append(("referring",) + scenes.referring(expr, scene, obj))
    for person in [o for o in scene.objects if o.kind == "person"]:
        out.append(("pose",) + scenes.pose(scene, person))
    rng.shuffle(out)
    seen = set()
    return [t for t in out if not (t[1] in seen or seen.add(t[1]))]


class Suffix:
    """One question (or, for follow-ups, two turns) about scene `owner`, as the tokens after the prefix:
    ids [S]; target[i] is the token position i predicts (IGNORE outside answers); weight[i] its loss weight
    (coordinates weighted up; each answer's weights scaled by 1/sqrt(its total) so that a 120-token pose
    answer does not outweigh a 12-token box nine to one); pointers (i, object) for positions whose next token
    is about one object."""

    def __init__(self, owner, task, ids, target, weight, pointers):
        self.owner, self.task, self.ids, self.target, self.weight, self.pointers = owner, task, ids, target, weight, pointers


def encode_suffix(owner, turns, tok, scene=None):
    """turns: [(task, question, answer), ...]; the last is the one the suffix is named after."""
    ids, target, weight, pointers = [], [], [], []
    for k, (_task, q, a) in enumerate(turns):
        head = tok.encode(("\n" + USER if k == 0 else " Human: ") + q + "\n" + ASSISTANT)
        ids += head
        target += [IGNORE] * len(head)
        weight += [0.0] * len(head)
        answer = tok.encode(" " + a + "\n###")
        w = [COORDINATE_WEIGHT if tok.coordinate_value(t) is not None else 1.0 for t in answer]
        scale = 1.0 / math.sqrt(sum(w))
        # Position len(ids) - 1 + j predicts answer token j.
        target[-1:] = [answer[0]]
        weight[-1:] = [w[0] * scale]
        target += answer[1:] + [IGNORE]
        weight += [x * scale for x in w[1:]] + [0.0]
        if scene is not None:
            spans = scenes.object_spans(scene, q, a)
            offset = -1  # the answer text starts after the leading space
            for j, t in enumerate(answer):
                for start, end, obj in spans:
                    if start <= offset < end:
                        pointers.append((len(ids) + j - 1, obj))
                        break
                offset += len(tok.tokens[t])  # byte-level and coordinate tokens: one character per byte
        ids += answer
    return Suffix(owner, turns[-1][0], ids, target, weight, pointers)


def fanout_batch(seeds, tok, cfg, questions=6, two_turn=0.1, bucket=64):
    """Pixels [5B, 3, S, S], prefix ids [B, P], dense targets, and the suffixes in length buckets: a list of
    dicts (owner [N], ids [N, S], target [N, S], weight [N, S], pointer [N, S, P], task [N]) — one attention
    call per bucket, so short questions do not pay for the longest pose answer."""
    pixels, targets, suffixes = [], [], []
    prefix = prefix_ids(tok, cfg)
    for b, s in enumerate(seeds):
        scene = scenes.make_scene(s)
        rng = random.Random(s * 7919 + 1)
        pixels.append(views(scene.image, cfg))
        targets.append(dense_targets(scene, cfg))
        tasks = scene_tasks(scene, rng)
        for k, t in enumerate(tasks[:questions]):
            turns = [t]
            if len(tasks) > 1 and rng.random() < two_turn:  # a follow-up keeps the multi-turn format learnt
                turns = [tasks[(k + 1) % len(tasks)], t]
            suffixes.append(encode_suffix(b, turns, tok, scene))
    g = cfg.view_size // cfg.patch_size
    groups = [[x for x in suffixes if len(x.ids) <= bucket], [x for x in suffixes if len(x.ids) > bucket]]
    buckets = []
    for group in groups:
        if not group:
            continue
        length = max(len(x.ids) for x in group)
        n = len(group)
        ids = torch.full((n, length), 3, dtype=torch.long)
        target = torch.full((n, length), IGNORE, dtype=torch.long)
        weight = torch.zeros((n, length))
        pointer = torch.zeros((n, length, len(prefix)))
        for r, x in enumerate(group):
            ids[r, :len(x.ids)] = torch.tensor(x.ids)
            target[r, :len(x.target)] = torch.tensor(x.target)
            weight[r, :len(x.weight)] = torch.tensor(x.weight)
            view_object = targets[x.owner]["view_object"]
            for pos, obj in x.pointers:
                for v in range(cfg.num_views):
                    patches = np.nonzero(view_object[v] == obj)[0]
                    pointer[r, pos, 1 + v * cfg.tokens_per_view + 2 + patches] = 1.0  # after BOS; start, cls
        assert g * g == targets[0]["view_object"].shape[1]
        buckets.append({"owner": torch.tensor([x.owner for x in group]), "ids": ids, "target": target,
                        "weight": weight, "pointer": pointer, "task": [x.task for x in group]})
    prefixes = torch.tensor([prefix] * len(seeds), dtype=torch.long)
    return torch.from_numpy(np.concatenate(pixels)), prefixes, stack_targets(targets), buckets


def check_fanout_segmentation(tok, cfg, seeds):
    """Prefix + suffix ids equal the ids of the whole single-turn text: the fan-out trains what the node sees."""
    prefix = prefix_ids(tok, cfg)
    for s in seeds:
        scene = scenes.make_scene(s)
        for t in scene_tasks(scene, random.Random(s)):
            suffix = encode_suffix(0, [t], tok)
            whole = tok.encode(full_text([(t[1], t[2])]))
            assert prefix[1 + cfg.tokens_per_image:] + suffix.ids == whole, "fan-out split changed the tokens of scene %d" % s
