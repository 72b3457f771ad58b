"""Writes the held-out evaluation set: scenes training never saw, as PNG files plus heldout.json.

  /usr/bin/python3 tools/sphinx_tiny/heldout.py --out models/sphinx-tiny/heldout --scenes 100

Seeds start at HELDOUT_SEED_BASE. Each scene gets one caption, one detection, one referring-expression
and (with a person) one pose question, with the ground truth in normalised padded-square coordinates; the
Java test ModelAccuracyTest asks them through a real node and scores the answers.
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenes  # noqa: E402
HELDOUT_SEED_BASE = 1_000_000_000  # held-out seeds start here; training never reaches them


def r2(values):
    return [round(v, 4) for v in values]


def scene_entry(i):
    """(PIL image, entry) of held-out scene i: the questions and their ground truth."""
    seed = HELDOUT_SEED_BASE + i
    scene = scenes.make_scene(seed)
    rng = random.Random(seed)
    name = "scene-%03d.png" % i
    kinds = sorted({o.kind for o in scene.objects})
    kind = rng.choice(kinds)
    q_det, _ = scenes.detection(scene, kind)
    refs = scenes.referring_expressions(scene)
    entry = {
        "image": name,
        "seed": seed,
        "width": scene.image.size[0],
        "height": scene.image.size[1],
        "objects": [{"kind": o.kind, "phrase": o.phrase()[2:], "box": r2(scene.box_norm(o))} for o in scene.objects],
        "caption": {"question": scenes.CAPTION_Q, "answer": scenes.caption(scene)[1]},
        "detection": {"question": q_det, "kind": kind,
                      "boxes": [r2(scene.box_norm(o)) for o in scene.objects if o.kind == kind],
                      "answer": scenes.detection(scene, kind)[1]},
    }
    if refs:
        expr, obj = rng.choice(refs)
        entry["referring"] = {"question": scenes.REFER_Q.format(expr), "expression": expr,
                              "box": r2(scene.box_norm(obj)), "answer": scene.box_text(obj)}
    people = [o for o in scene.objects if o.kind == "person"]
    if people:
        person = rng.choice(people)
        q, a = scenes.pose(scene, person)
        entry["pose"] = {"question": q, "box": r2(scene.box_norm(person)),
                         "keypoints": [r2((scene.nx(x), scene.ny(y))) for x, y in person.keypoints], "answer": a}
    return scene.image, entry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=100)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    entries = []
    for i in range(args.scenes):
        image, entry = scene_entry(i)
        image.save(os.path.join(args.out, entry["image"]), optimize=True)
        entries.append(entry)
    with open(os.path.join(args.out, "heldout.json"), "w") as f:
        json.dump({"keypoints": scenes.KEYPOINTS, "scenes": entries}, f, indent=1)
        f.write("\n")
    print("wrote %d scenes to %s" % (len(entries), args.out))


if __name__ == "__main__":
    main()
