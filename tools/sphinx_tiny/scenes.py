"""Synthetic scenes and SPHINX-format conversations about them: the training and held-out data of SPHINX-tiny.

Deterministic: scene(seed) always draws the same picture and asks the same questions.

Vocabulary (documented in docs/MODEL.md):
  shapes   circle, square, triangle, star            (plural: +s)
  colours  red, green, blue, yellow, purple, orange
  sizes    small, large
  people   stick figures with the 17 COCO keypoints  ("person", plural "people")
Scenes hold 1-4 objects (at most two people) on a plain, gradient or noisy background; the canvas is
192-448 px per side with aspect ratios up to 2:1, so padding to a square matters. (The first world had 1-6
objects down to 0.07 of the side and limbs ~0.5 px wide in the 112-pixel global view; the second recipe
simplified it: docs/MODEL.md.)

Coordinates are normalised to the padded square (centred padding, as the node and SPHINX's expand2square do),
two decimals.
"""

import math
import random

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "star"]
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 180),
    "orange": (250, 130, 10),
}
SIZES = ["small", "large"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "person": "people"}
NUMBERS = ["no", "one", "two", "three", "four", "five", "six"]
KEYPOINTS = [
    "nose", "left eye", "right eye", "left ear", "right ear", "left shoulder", "right shoulder",
    "left elbow", "right elbow", "left wrist", "right wrist", "left hip", "right hip", "left knee",
    "right knee", "left ankle", "right ankle",
]

CAPTION_Q = "What is in the image?"
REFER_Q = "Please provide the bounding box coordinate of the region this sentence describes: {}."
DETECT_Q = "Detect all {}."
POSE_Q = "Detect the key points of the person in the region {}."
COUNT_Q = "How many {} are there?"


class Obj:
    """One drawn thing: a shape (kind in SHAPES) or a person; box and keypoints in canvas pixels."""

    def __init__(self, kind, colour, size, box, keypoints=None):
        self.kind = kind
        self.colour = colour
        self.size = size
        self.box = box  # (x1, y1, x2, y2) pixels
        self.keypoints = keypoints  # 17 (x, y) pixels, people only

    def phrase(self):
        if self.kind == "person":
            return "a person"
        return "a {} {} {}".format(self.size, self.colour, self.kind)


class Scene:
    def __init__(self, image, objects):
        self.image = image
        self.objects = objects
        w, h = image.size
        self.side = max(w, h)
        self.off_x = (self.side - w) // 2
        self.off_y = (self.side - h) // 2

    def nx(self, x):
        return min(max((x + self.off_x) / self.side, 0.0), 1.0)

    def ny(self, y):
        return min(max((y + self.off_y) / self.side, 0.0), 1.0)

    def box_norm(self, obj):
        x1, y1, x2, y2 = obj.box
        return (self.nx(x1), self.ny(y1), self.nx(x2), self.ny(y2))

    def box_text(self, obj):
        return "[" + ",".join("%.2f" % v for v in self.box_norm(obj)) + "]"

    def point_text(self, p):
        return "[%.2f,%.2f]" % (self.nx(p[0]), self.ny(p[1]))


# ---- drawing -----------------------------------------------------------------------------------------------

def _background(rng, w, h):
    # Mid-tones only: people are drawn in dark colours, which must stand apart from every background.
    base = tuple(rng.randint(120, 215) for _ in range(3))
    # Keep backgrounds greyish so that they never look like an object colour.
    grey = sum(base) // 3
    base = tuple((c + 2 * grey) // 3 for c in base)
    kind = rng.choice(["plain", "gradient", "noise"])
    img = Image.new("RGB", (w, h), base)
    if kind == "gradient":
        other = tuple(max(110, min(225, c + rng.randint(-40, 40))) for c in base)
        draw = ImageDraw.Draw(img)
        for y in range(h):
            t = y / max(1, h - 1)
            draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(base, other)))
    elif kind == "noise":
        # From the scene's own generator: PIL's effect_noise draws from C's rand(), so the same seed gave
        # a different picture depending on what ran before it in the process.
        sigma = rng.uniform(8, 25)
        grey = np.random.RandomState(rng.randrange(2 ** 31)).normal(128, sigma, (h, w)).clip(0, 255).astype(np.uint8)
        noise = Image.fromarray(grey, "L").convert("RGB")
        img = Image.blend(img, noise, 0.15)
    return img


def _star(cx, cy, r):
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        rr = r if i % 2 == 0 else r * 0.45
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def _draw_shape(draw, kind, colour, box):
    x1, y1, x2, y2 = box
    fill = COLOURS[colour]
    if kind == "circle":
        draw.ellipse([x1, y1, x2, y2], fill=fill)
    elif kind == "square":
        draw.rectangle([x1, y1, x2, y2], fill=fill)
    elif kind == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=fill)
    else:
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
        pts = _star(cx, cy, r)
        draw.polygon(pts, fill=fill)


def _person(rng, x, y, height):
    """Keypoints of a stick figure whose box starts at (x, y); returns (keypoints, box, head radius)."""
    u = height / 8.0  # head-height units
    head_r = 0.5 * u
    cx = x + 2.2 * u
    head_cy = y + head_r
    nose = (cx, head_cy + 0.15 * u)
    # Facing the viewer: the person's left is the image's right.
    eyes = [(cx + 0.2 * u, head_cy - 0.1 * u), (cx - 0.2 * u, head_cy - 0.1 * u)]
    ears = [(cx + 0.45 * u, head_cy), (cx - 0.45 * u, head_cy)]
    sh_y = y + 1.5 * u
    hip_y = y + 4.2 * u
    shoulders = [(cx + 0.9 * u, sh_y), (cx - 0.9 * u, sh_y)]
    hips = [(cx + 0.6 * u, hip_y), (cx - 0.6 * u, hip_y)]

    def limb(start, length, angle_deg):
        a = math.radians(angle_deg)
        return (start[0] + length * math.sin(a), start[1] + length * math.cos(a))

    # Angles from straight down; positive swings towards the image's right.
    l_up, r_up = rng.uniform(-10, 150), -rng.uniform(-10, 150)
    elbows = [limb(shoulders[0], 1.4 * u, l_up), limb(shoulders[1], 1.4 * u, r_up)]
    wrists = [limb(elbows[0], 1.3 * u, l_up + rng.uniform(-60, 60)), limb(elbows[1], 1.3 * u, r_up + rng.uniform(-60, 60))]
    l_leg, r_leg = rng.uniform(0, 30), -rng.uniform(0, 30)
    knees = [limb(hips[0], 1.9 * u, l_leg), limb(hips[1], 1.9 * u, r_leg)]
    ankles = [limb(knees[0], 1.9 * u, l_leg + rng.uniform(-20, 20)), limb(knees[1], 1.9 * u, r_leg + rng.uniform(-20, 20))]
    kps = [nose, eyes[0], eyes[1], ears[0], ears[1], shoulders[0], shoulders[1], elbows[0], elbows[1],
           wrists[0], wrists[1], hips[0], hips[1], knees[0], knees[1], ankles[0], ankles[1]]
    xs = [p[0] for p in kps] + [cx - head_r, cx + head_r]
    ys = [p[1] for p in kps] + [head_cy - head_r]
    box = (min(xs), min(ys), max(xs), max(ys))
    return kps, box, head_r


def _draw_person(draw, kps, head_r, colour, width):
    k = dict(zip(KEYPOINTS, kps))
    head_c = (k["nose"][0], k["nose"][1] - 0.3 * head_r)
    draw.ellipse([head_c[0] - head_r, head_c[1] - head_r, head_c[0] + head_r, head_c[1] + head_r], fill=colour)
    neck = ((k["left shoulder"][0] + k["right shoulder"][0]) / 2, k["left shoulder"][1])
    pelvis = ((k["left hip"][0] + k["right hip"][0]) / 2, k["left hip"][1])
    segs = [("left shoulder", "right shoulder"), ("left hip", "right hip"), ("left shoulder", "left elbow"),
            ("left elbow", "left wrist"), ("right shoulder", "right elbow"), ("right elbow", "right wrist"),
            ("left hip", "left knee"), ("left knee", "left ankle"), ("right hip", "right knee"),
            ("right knee", "right ankle")]
    draw.line([neck, pelvis], fill=colour, width=width)
    for a, b in segs:
        draw.line([k[a], k[b]], fill=colour, width=width)
    # Facial points in a contrasting colour so the face's orientation is visible.
    face = (255, 255, 255) if sum(colour) < 380 else (0, 0, 0)
    for name in ("left eye", "right eye", "nose"):
        x, y = k[name]
        r = max(1.0, head_r * 0.15)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=face)


def _overlaps(box, boxes, margin):
    for b in boxes:
        if box[0] < b[2] + margin and b[0] < box[2] + margin and box[1] < b[3] + margin and b[1] < box[3] + margin:
            return True
    return False


MAX_OBJECTS = 4
PERSON_COLOURS = [(20, 20, 20), (70, 35, 10), (25, 25, 90)]


def make_scene(seed, max_objects=MAX_OBJECTS):
    rng = random.Random(seed)
    side = rng.randint(192, 448)
    aspect = math.exp(rng.uniform(-math.log(2), math.log(2)))
    w, h = (side, max(96, int(side / aspect))) if aspect > 1 else (max(96, int(side * aspect)), side)
    img = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    m = max(w, h)
    n_objects = rng.randint(1, max_objects)
    n_people = 0
    objects = []
    boxes = []
    for _ in range(n_objects):
        for _attempt in range(30):
            if n_people < 2 and rng.random() < 0.2:
                height = rng.uniform(0.45, 0.95) * h
                if height * 4.4 / 8 > w * 0.9:
                    continue
                x = rng.uniform(0, w - 4.4 / 8 * height)
                y = rng.uniform(0, h - height)
                kps, box, head_r = _person(rng, x, y, height)
                if box[0] < 0 or box[1] < 0 or box[2] > w or box[3] > h or _overlaps(box, boxes, 3):
                    continue
                colour = rng.choice(PERSON_COLOURS)
                # Limbs at least ~1.5 px wide in the 112-pixel global view (the first world's were ~0.5 px).
                _draw_person(draw, kps, head_r, colour, max(4, int(m / 75), int(height / 22)))
                objects.append(Obj("person", None, None, box, kps))
                n_people += 1
            else:
                kind = rng.choice(SHAPES)
                size = rng.choice(SIZES)
                d = rng.uniform(0.12, 0.17) * m if size == "small" else rng.uniform(0.22, 0.30) * m
                if d > 0.95 * min(w, h):
                    continue
                x = rng.uniform(0, w - d)
                y = rng.uniform(0, h - d)
                box = (x, y, x + d, y + d)
                if _overlaps(box, boxes, 3):
                    continue
                colour = rng.choice(list(COLOURS))
                _draw_shape(draw, kind, colour, box)
                if kind == "star":  # the star's tight box: its outer points
                    pts = _star((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, d / 2)
                    box = (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts))
                objects.append(Obj(kind, colour, size, box))
            boxes.append(objects[-1].box)
            break
    if not objects:
        return make_scene(seed + 1_000_003, max_objects)
    objects.sort(key=lambda o: (o.box[0], o.box[1]))  # left to right: the order answers list things in
    return Scene(img, objects)


# ---- questions and answers ---------------------------------------------------------------------------------

def caption(scene):
    phrases = [o.phrase() for o in scene.objects]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return CAPTION_Q, "The image shows " + listed + "."


def detection(scene, kind):
    found = [o for o in scene.objects if o.kind == kind]
    plural = PLURAL[kind]
    if not found:
        return DETECT_Q.format(plural), "There are no {} in the image.".format(plural)
    boxes = "[" + ";".join(scene.box_text(o)[1:-1] for o in found) + "]"
    if len(found) == 1:
        return DETECT_Q.format(plural), "There is one {}{} in the image.".format(kind, boxes)
    return DETECT_Q.format(plural), "There are {} {}{} in the image.".format(NUMBERS[len(found)], plural, boxes)


def counting(scene, kind):
    n = sum(1 for o in scene.objects if o.kind == kind)
    plural = PLURAL[kind]
    if n == 1:
        return COUNT_Q.format(plural), "There is one {}.".format(kind)
    return COUNT_Q.format(plural), "There are {} {}.".format(NUMBERS[n], plural)


def referring_expressions(scene):
    """(expression, object) for every object some description picks out alone."""
    out = []
    for o in scene.objects:
        if o.kind == "person":
            candidates = ["the person"]
        else:
            candidates = ["the " + o.kind, "the {} {}".format(o.colour, o.kind), "the {} {}".format(o.size, o.kind),
                          "the {} {} {}".format(o.size, o.colour, o.kind)]
        for c in candidates:
            if sum(1 for p in scene.objects if _matches(c, p)) == 1:
                out.append((c, o))
                break
    return out


def _matches(expr, o):
    words = expr.split()[1:]
    if o.kind == "person":
        return words == ["person"]
    attrs = {o.kind, o.colour, o.size}
    return words[-1] == o.kind and all(w in attrs for w in words)


def referring(expr, scene, obj):
    return REFER_Q.format(expr), scene.box_text(obj)


def pose(scene, person):
    pts = ", ".join(name + scene.point_text(p) for name, p in zip(KEYPOINTS, person.keypoints))
    return POSE_Q.format(scene.box_text(person)), "The detected keypoints are " + pts + "."


def object_spans(scene, question, answer):
    """(start, end, object index) of the parts of an answer that are about one object: a caption's phrases,
    a detection's or referring answer's boxes, a pose answer (all of it, about the person in the question).
    Training uses them to point an attention head at that object's image tokens."""
    spans = []
    if question == CAPTION_Q:
        at = 0
        for i, o in enumerate(scene.objects):
            at = answer.find(o.phrase(), at)
            spans.append((at, at + len(o.phrase()), i))
            at += len(o.phrase())
    elif question.startswith(POSE_Q.split("{}")[0]):
        spans += [(0, len(answer), i) for i, o in enumerate(scene.objects) if o.kind == "person" and scene.box_text(o) in question]
    else:
        for i, o in enumerate(scene.objects):
            inner = scene.box_text(o)[1:-1]
            at = answer.find(inner)
            if at >= 0:
                spans.append((at, at + len(inner), i))
    return spans


def conversation(scene, rng, max_turns=4):
    """A random conversation of 1..max_turns (question, answer) pairs about the scene."""
    tasks = []
    kinds_present = sorted({o.kind for o in scene.objects})
    tasks.append(caption(scene))
    for _ in range(2):
        kind = rng.choice(kinds_present) if rng.random() < 0.75 else rng.choice(SHAPES + ["person"])
        tasks.append(detection(scene, kind))
    kind = rng.choice(kinds_present) if rng.random() < 0.7 else rng.choice(SHAPES + ["person"])
    tasks.append(counting(scene, kind))
    refs = referring_expressions(scene)
    for expr, obj in rng.sample(refs, min(3, len(refs))):
        tasks.append(referring(expr, scene, obj))
    people = [o for o in scene.objects if o.kind == "person"]
    if people:
        tasks.append(pose(scene, rng.choice(people)))
        if rng.random() < 0.5:
            tasks.append(pose(scene, rng.choice(people)))
    rng.shuffle(tasks)
    seen = set()
    unique = [t for t in tasks if not (t[0] in seen or seen.add(t[0]))]
    return unique[: rng.randint(1, max_turns)]
