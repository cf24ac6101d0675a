#!/usr/bin/python3
"""Writes the image fixtures and references for tests/test_image.c:

- tests/ref/image/*.png: tiny PNGs of every colour type the decoder must
  convert (RGB, gray 1/8-bit, palette with tRNS, RGBA, 16-bit RGB and
  gray+alpha), a corrupt one (a flipped IDAT byte) and a truncated one,
  encoded here by hand (zlib + chunks), so the expected pixels are known;
- tests/ref/image_ref.safetensors: the expected 8-bit RGB of each fixture,
  PyTorch's bilinear resizes (F.interpolate, align_corners=False) of the RGB
  fixture, a CLIP-normalised resize, Qwen2-VL's patch packing (its reshape /
  permute) of a random image, and Qwen2-VL smart_resize results.

Run: /usr/bin/python3 tests/gen_image_ref.py
"""
import json
import math
import os
import random
import struct
import zlib

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
IMG_DIR = os.path.join(HERE, "ref", "image")
OUT = os.path.join(HERE, "ref", "image_ref.safetensors")
rng = random.Random(8)


def chunk(kind, data):
    c = kind + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)


def png_bytes(w, h, color_type, depth, rows, plte=None, trns=None):
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 on every row
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    if plte is not None:
        out += chunk(b"PLTE", bytes(plte))
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns))
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def over_white(v, a):
    # the decoder's compositing rule (runtime/image.c), on 8-bit values
    return (v * a + 255 * (255 - a) + 127) // 255


def scale16(v):
    # libpng's png_set_scale_16: 16 -> 8 bits with rounding
    return (v * 255 + 32895) >> 16


fixtures = {}  # name -> (png bytes, expected [h, w, 3] list)

# RGB 8-bit, 7 wide, 5 high
w, h = 7, 5
px = [[[rng.randrange(256) for _ in range(3)] for _ in range(w)] for _ in range(h)]
fixtures["rgb8"] = (png_bytes(w, h, 2, 8, [bytes(sum(r, [])) for r in px]), px)

# gray 8-bit
w, h = 6, 4
g = [[rng.randrange(256) for _ in range(w)] for _ in range(h)]
fixtures["gray8"] = (png_bytes(w, h, 0, 8, [bytes(r) for r in g]), [[[v] * 3 for v in r] for r in g])

# gray 1-bit, 9 wide (two bytes per row, MSB first)
w, h = 9, 2
bits = [[rng.randrange(2) for _ in range(w)] for _ in range(h)]
rows = []
for r in bits:
    b = r + [0] * (16 - w)
    rows.append(bytes(int("".join(map(str, b[i:i + 8])), 2) for i in (0, 8)))
fixtures["gray1"] = (png_bytes(w, h, 0, 1, rows), [[[255 * v] * 3 for v in r] for r in bits])

# palette with transparency (entry 1 fully transparent, entry 2 half)
w, h = 5, 3
pal = [(200, 10, 30), (0, 0, 0), (20, 100, 220), (250, 250, 5)]
alpha = [255, 0, 128]  # entries past the tRNS list are opaque
idx = [[rng.randrange(4) for _ in range(w)] for _ in range(h)]
exp = [[[over_white(c, alpha[i] if i < 3 else 255) for c in pal[i]] for i in r] for r in idx]
fixtures["palette"] = (png_bytes(w, h, 3, 8, [bytes(r) for r in idx], plte=sum(map(list, pal), []), trns=alpha), exp)

# RGBA 8-bit
w, h = 4, 4
rgba = [[[rng.randrange(256) for _ in range(3)] + [rng.choice([0, 255, rng.randrange(256)])] for _ in range(w)]
        for _ in range(h)]
exp = [[[over_white(c, p[3]) for c in p[:3]] for p in r] for r in rgba]
fixtures["rgba8"] = (png_bytes(w, h, 6, 8, [bytes(sum(r, [])) for r in rgba]), exp)

# RGB 16-bit
w, h = 3, 3
p16 = [[[rng.randrange(65536) for _ in range(3)] for _ in range(w)] for _ in range(h)]
rows = [b"".join(struct.pack(">HHH", *p) for p in r) for r in p16]
fixtures["rgb16"] = (png_bytes(w, h, 2, 16, rows), [[[scale16(c) for c in p] for p in r] for r in p16])

# gray + alpha 16-bit
w, h = 3, 2
ga = [[(rng.randrange(65536), rng.choice([0, 65535, rng.randrange(65536)])) for _ in range(w)] for _ in range(h)]
rows = [b"".join(struct.pack(">HH", *p) for p in r) for r in ga]
exp = [[[over_white(scale16(p[0]), scale16(p[1]))] * 3 for p in r] for r in ga]
fixtures["graya16"] = (png_bytes(w, h, 4, 16, rows), exp)

os.makedirs(IMG_DIR, exist_ok=True)
for name, (data, _) in fixtures.items():
    with open(os.path.join(IMG_DIR, name + ".png"), "wb") as f:
        f.write(data)
good = fixtures["rgb8"][0]
bad = bytearray(good)
bad[good.index(b"IDAT") + 10] ^= 0x5A  # a flipped byte inside the compressed data
with open(os.path.join(IMG_DIR, "corrupt.png"), "wb") as f:
    f.write(bytes(bad))
with open(os.path.join(IMG_DIR, "truncated.png"), "wb") as f:
    f.write(good[: len(good) * 6 // 10])

tensors = {}
for name, (_, e) in fixtures.items():
    tensors["decoded." + name] = torch.tensor(e, dtype=torch.uint8)

# Resizing: the RGB fixture as planar floats in [0, 1], through PyTorch's
# bilinear interpolation (computed in float64, stored as float32).
src = torch.tensor(fixtures["rgb8"][1], dtype=torch.float64).permute(2, 0, 1) / 255.0
sizes = [(10, 14), (3, 4), (5, 7), (12, 9), (2, 13)]
for oh, ow in sizes:
    r = F.interpolate(src[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
    tensors["resize.%dx%d" % (oh, ow)] = r.float()
mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float64)[:, None, None]
std = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float64)[:, None, None]
r = F.interpolate(src[None], size=(10, 14), mode="bilinear", align_corners=False)[0]
tensors["normalized.10x14"] = ((r - mean) / std).float()

# Patch packing as Qwen2-VL's image processor does it (without the temporal
# axis): patch 2, merge 2, image 3 x 8 x 12 -> grid 4 x 6.
C, P, M, H, W = 3, 2, 2, 8, 12
img = torch.randn(C, H, W, generator=torch.Generator().manual_seed(3))
gh, gw = H // P, W // P
x = img.reshape(C, gh // M, M, P, gw // M, M, P).permute(1, 4, 2, 5, 0, 3, 6)
tensors["patch.input"] = img
tensors["patch.output"] = x.reshape(gh * gw, C * P * P).contiguous()


def smart_resize(h, w, factor, min_pixels, max_pixels):
    # Qwen2-VL's rule (transformers' smart_resize); Python's round() is half-to-even
    hb = max(factor, round(h / factor) * factor)
    wb = max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


cases = [(112, 112, 28, 3136, 50176), (30, 20, 28, 3136, 50176), (42, 70, 28, 3136, 50176),
         (1000, 600, 28, 3136, 50176), (500, 333, 14, 3136, 200704), (14, 2000, 28, 3136, 50176),
         (224, 224, 28, 3136, 50176), (225, 300, 16, 1024, 65536), (7, 5, 28, 784, 3136), (640, 480, 28, 3136, 1003520)]
tensors["smart.cases"] = torch.tensor(cases, dtype=torch.int32)
tensors["smart.out"] = torch.tensor([smart_resize(*c) for c in cases], dtype=torch.int32)

# safetensors by hand: 8-byte little-endian header length, JSON header, data
DT = {torch.float32: ("F32", "<f"), torch.int32: ("I32", "<i"), torch.uint8: ("U8", "<B")}
header, blobs, off = {}, [], 0
for name, t in tensors.items():
    t = t.contiguous()
    code, fmt = DT[t.dtype]
    data = struct.pack("<%d%s" % (t.numel(), fmt[1]), *t.flatten().tolist())
    header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
    blobs.append(data)
    off += len(data)
hj = json.dumps(header, separators=(",", ":")).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
with open(OUT, "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
print("wrote", OUT, "and", len(fixtures) + 2, "PNGs in", IMG_DIR)
