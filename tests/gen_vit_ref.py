#!/usr/bin/python3
"""PyTorch reference for the vision encoder (models/vit.h): a micro Qwen2-VL
style ViT written with plain torch modules, run on three images of different
sizes packed into one batch. Writes tests/ref/vit_ref.safetensors with

  weights under the C parameter names, images image0..2 [3, H, W], the packed
  patches input.pixels, input.grid (f32), input.dout (the loss weights R),
  out.embeds, and grad.<name> = d(sum(embeds * R))/d(weight).

Computed in float64 from float32-rounded weights and inputs, stored as f32.
Run: /usr/bin/python3 tests/gen_vit_ref.py
"""
import json
import os
import struct

import torch
import torch.nn as nn

torch.manual_seed(0)
DT = torch.float64

PATCH, CH, WIDTH, DEPTH, HEADS, MLP, OUT, MERGE = 2, 3, 16, 2, 2, 32, 12, 2
EPS, THETA = 1e-6, 10000.0
GRIDS = [(4, 4), (2, 4), (2, 2)]  # (h, w) in patches per image


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope2d(x, freqs):
    # x [N, H, hd]; freqs [N, hd/2]: Qwen2-VL apply_rotary_pos_emb_vision
    cos = freqs.cos().repeat(1, 2).unsqueeze(1)
    sin = freqs.sin().repeat(1, 2).unsqueeze(1)
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x, segs, freqs):
        n = x.shape[0]
        hd = WIDTH // HEADS
        q, k, v = self.qkv(x).reshape(n, 3, HEADS, hd).unbind(1)
        q, k = rope2d(q, freqs), rope2d(k, freqs)
        out = torch.zeros(n, HEADS, hd, dtype=x.dtype)
        for a, b in segs:  # full attention within one image
            s = torch.einsum("qhd,khd->hqk", q[a:b], k[a:b]) / hd ** 0.5
            p = s.softmax(-1)
            out[a:b] = torch.einsum("hqk,khd->qhd", p, v[a:b])
        return self.proj(out.reshape(n, WIDTH))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(WIDTH, MLP)
        self.act = nn.GELU()  # exact erf form
        self.fc2 = nn.Linear(MLP, WIDTH)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(WIDTH, eps=EPS)
        self.attn = Attention()
        self.norm2 = nn.LayerNorm(WIDTH, eps=EPS)
        self.mlp = Mlp()

    def forward(self, x, segs, freqs):
        x = x + self.attn(self.norm1(x), segs, freqs)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(CH * PATCH * PATCH, WIDTH, bias=False)

    def forward(self, x):
        return self.proj(x)


class Merger(nn.Module):
    def __init__(self):
        super().__init__()
        md = WIDTH * MERGE * MERGE
        self.ln_q = nn.LayerNorm(WIDTH, eps=EPS)
        self.mlp = nn.Sequential(nn.Linear(md, md), nn.GELU(), nn.Linear(md, OUT))

    def forward(self, x):
        return self.mlp(self.ln_q(x).reshape(-1, WIDTH * MERGE * MERGE))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.merger = Merger()

    def forward(self, pixels, grids):
        # Qwen2-VL rot_pos_emb: (row, col) of every patch in merge order
        hd = WIDTH // HEADS
        dim = hd // 2
        inv = 1.0 / (THETA ** (torch.arange(0, dim, 2, dtype=DT) / dim))
        pos, segs, a = [], [], 0
        for h, w in grids:
            hp = torch.arange(h).unsqueeze(1).expand(-1, w)
            wp = torch.arange(w).unsqueeze(0).expand(h, -1)
            m = MERGE
            hp = hp.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            wp = wp.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            pos.append(torch.stack([hp, wp], -1))
            segs.append((a, a + h * w))
            a += h * w
        pos = torch.cat(pos).to(DT)
        freqs = torch.cat([pos[:, :1] * inv, pos[:, 1:] * inv], -1)  # [N, hd/2]
        x = self.patch_embed(pixels)
        for b in self.blocks:
            x = b(x, segs, freqs)
        return self.merger(x)


def patchify(img, h, w):
    # [C, H, W] -> [h*w, C*p*p] in merge order (Qwen2-VL image processor, temporal 1)
    m, p = MERGE, PATCH
    x = img.reshape(CH, h // m, m, p, w // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
    return x.reshape(h * w, CH * p * p)


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous()
        raw = a.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    model = ViT()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # random everywhere (LayerNorm gains and biases too), rounded to f32
            p.copy_((torch.randn_like(p) * (0.5 if p.dim() == 1 else 1.0 / p.shape[1] ** 0.5)).float())
    model = model.to(DT)
    images = [torch.randn(CH, h * PATCH, w * PATCH).float().to(DT) for h, w in GRIDS]
    pixels = torch.cat([patchify(im, h, w) for im, (h, w) in zip(images, GRIDS)])
    out = model(pixels, GRIDS)
    dout = torch.randn_like(out).float().to(DT)
    (out * dout).sum().backward()
    t = {}
    for name, p in model.named_parameters():
        t[name] = p
    for i, im in enumerate(images):
        t["image%d" % i] = im
    t["input.pixels"] = pixels
    t["input.grid"] = torch.tensor(GRIDS, dtype=DT)
    t["input.dout"] = dout
    t["out.embeds"] = out
    for name, p in model.named_parameters():
        t["grad." + name] = p.grad
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "ref", "vit_ref.safetensors")
    write_safetensors(path, t)
    print("wrote", path, "embeds", tuple(out.shape))


if __name__ == "__main__":
    main()
