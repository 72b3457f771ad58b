"""The fixture for the node's torch-bicubic global view (real SPHINX resizes the normalised 448 image to 224
inside the model with F.interpolate(image.half(), 224, mode="bicubic"); the node does it on the host).

  /usr/bin/python3 tools/sphinx_export/views_fixture.py

Writes server/src/test/resources/views/torch-bicubic.safetensors:
  image448        float32 [3, 448, 448]  docs/examples/scene.png as SPHINX's host transform makes it: padded to a
                                         square with (122, 116, 104), centred; Pillow resize to 448 BICUBIC;
                                         /255; CLIP mean/std
  global224       float32 [3, 224, 224]  F.interpolate(image448[None], (224, 224), mode="bicubic",
                                         align_corners=False)[0], in float32
  global224_fp16  float32 [3, 224, 224]  the same as SPHINX computes it: input rounded to float16, result
                                         rounded to float16 (then widened back to float32)

SPHINX runs this on CUDA, whose upsample_bicubic2d kernel is templated on <scalar_t, accscalar_t> (float
accumulation for float16); CPU torch 1.13 has no float16 bicubic, so global224_fp16 is an emulation: float16-
rounded input, float32 bicubic, float16-rounded output. That it equals CUDA's bit for bit is NOT verified (no
GPU here); where this torch has a CPU float16 kernel it is used instead and the difference is printed.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import meta_folder  # noqa: E402

SRC = os.path.join(ROOT, "docs/examples/scene.png")
OUT = os.path.join(ROOT, "server/src/test/resources/views/torch-bicubic.safetensors")


def host_transform(image, size=448):
    """Accessory's T_padded_resize: PadToSquare(CLIP mean colour), Resize(size, BICUBIC) on the PIL image,
    ToTensor, Normalize(CLIP mean, std)."""
    image = image.convert("RGB")
    w, h = image.size
    m = max(w, h)
    square = Image.new("RGB", (m, m), tuple(meta_folder.PAD_RGB))
    square.paste(image, ((m - w) // 2, (m - h) // 2))
    big = square.resize((size, size), Image.BICUBIC)
    x = np.asarray(big, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.array(meta_folder.CLIP_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.array(meta_folder.CLIP_STD, dtype=np.float32).reshape(3, 1, 1)
    return torch.from_numpy(((x - mean) / std).astype(np.float32))


def main():
    image448 = host_transform(Image.open(SRC))
    x = image448[None]
    global224 = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)[0]
    emulated = F.interpolate(x.half().float(), size=(224, 224), mode="bicubic", align_corners=False)[0].half().float()
    try:
        native = F.interpolate(x.half(), size=(224, 224), mode="bicubic", align_corners=False)[0].float()
        print("CPU float16 bicubic exists; max |native - emulated| = %g" % (native - emulated).abs().max())
        fp16 = native
    except RuntimeError as e:  # "not implemented for 'Half'"
        print("no CPU float16 bicubic (%s): float16 emulated (fp16 input, fp32 bicubic, fp16 result)" % str(e)[:60])
        fp16 = emulated
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    meta_folder.write_safetensors(OUT, {"image448": image448, "global224": global224.contiguous(),
                                        "global224_fp16": fp16.contiguous()}, "F32")
    print("max |global224 - global224_fp16| = %g" % (global224 - fp16).abs().max())
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
