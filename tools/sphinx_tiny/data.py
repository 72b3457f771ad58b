"""Training examples: a scene's five views and its conversation as token ids with answer labels.

Views follow the node's ViewPreprocessor: centred pad with the bundle's pad colour to a square, bicubic
resize to image_size, CLIP normalisation; view 0 is the whole image resized to view_size, views 1..4 the
2x2 tiles, row-major. (The node resizes the global view from the normalised floats, Pillow here from the
8-bit image: the difference is below a grey level.)

The conversation text is rendered exactly as the node's PromptRenderer renders conv_v1_2:
  system + Σ("### Human: " + q + "\\n" + "### Assistant:" + " " + a + "\\n") + "###"
and the labels are the tokens of each " " + a + "\\n###": the model learns to end an answer with the stop
string "\\n###", which the node holds back and stops on.
"""

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


def example(seed, tok, cfg, max_turns=4, max_objects=6):
    scene = scenes.make_scene(seed, max_objects)
    turns = scenes.conversation(scene, random.Random(seed * 7919 + 1), max_turns)
    return scene, views(scene.image, cfg), turns


def batch(seeds, tok, cfg, max_turns=4, max_objects=6):
    """Pixels [5B, 3, S, S], ids and labels [B, L] padded, and the dense targets of the auxiliary heads."""
    pixels, seqs, targets = [], [], []
    for s in seeds:
        scene, v, turns = example(s, tok, cfg, max_turns, max_objects)
        pixels.append(v)
        seqs.append(encode_conversation(turns, tok, cfg, scene))
        targets.append(dense_targets(scene, cfg))
    length = max(len(i) for i, _, _ in seqs)
    ids = torch.full((len(seqs), length), 3, dtype=torch.long)
    labels = torch.full((len(seqs), length), IGNORE, dtype=torch.long)
    # pointer[b, p, j] = 1 where position p should attend to image token j (sequence position 1 + j): the
    # global-view patches of the object the next answer token is about.
    pointer = torch.zeros((len(seqs), length, length))
    g = cfg.view_size // cfg.patch_size
    for b, (i, l, ptrs) in enumerate(seqs):
        ids[b, :len(i)] = torch.tensor(i)
        labels[b, :len(l)] = torch.tensor(l)
        obj_map = targets[b]["object"]
        for pos, obj in ptrs:
            patches = np.nonzero(obj_map == obj)[0]
            pointer[b, pos, 1 + 2 + patches] = 1.0  # view 0 tokens: start, cls, then the g*g patches
    assert g * g == len(targets[0]["object"])
    return torch.from_numpy(np.concatenate(pixels)), ids, labels, stack_targets(targets), pointer


def vision_batch(seeds, cfg, max_objects=6):
    """Pixels and dense targets only: the vision encoder's pre-training."""
    pixels, targets = [], []
    for s in seeds:
        scene = scenes.make_scene(s, max_objects)
        pixels.append(views(scene.image, cfg))
        targets.append(dense_targets(scene, cfg))
    return torch.from_numpy(np.concatenate(pixels)), stack_targets(targets)


def encode_conversation(turns, tok, cfg, scene=None):
    """(ids, labels): the full text tokenized in segments whose boundaries are pre-token boundaries.

    Segments: [system + Human line + "### Assistant:"] [" a\\n###"] [" Human: q\\n### Assistant:"] [" a\\n###"] ...
    The full text "...\\n### Human: q..." splits into the same pre-tokens ("###", " Human", ":"...), so the
    concatenated segment ids equal the ids of the whole text (checked by check_segmentation).
    """
    ids = [BOS] + [IMAGE] * cfg.tokens_per_image
    labels = [IGNORE] * len(ids)
    pointers = []  # (sequence position, object index)
    for k, (q, a) in enumerate(turns):
        head = (SYSTEM + USER if k == 0 else " Human: ") + q + "\n" + ASSISTANT
        part = tok.encode(head)
        ids += part
        labels += [IGNORE] * len(part)
        answer = tok.encode(" " + a + "\n###")
        if scene is not None:
            spans = scenes.object_spans(scene, q, a)
            offset = -1  # the answer text starts after the leading space
            for k, t in enumerate(answer):
                for start, end, obj in spans:
                    if start <= offset < end:
                        pointers.append((len(ids) + k - 1, obj))  # position k-1 predicts token k
                        break
                offset += len(tok.tokens[t])
        ids += answer
        labels += answer
    if scene is not None:
        return ids, labels, pointers
    return ids, labels


def full_text(turns):
    text = SYSTEM
    for q, a in turns:
        text += USER + q + "\n" + ASSISTANT + " " + a + "\n"
    return text + "###"


def check_segmentation(tok, cfg, seeds):
    for s in seeds:
        _, _, turns = example(s, tok, cfg)
        ids, _ = encode_conversation(turns, tok, cfg)
        whole = tok.encode(full_text(turns))
        assert ids[1 + cfg.tokens_per_image:] == whole, "segmenting changed the tokens of scene %d" % s


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
    return {"cls": cls, "colour": colour, "size": size, "owner": owner, "object": obj_map, "box": box,
            "digits": digits, "is_person": is_person, "keypoints": keypoints}


def stack_targets(targets):
    return {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}
