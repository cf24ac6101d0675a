#!/usr/bin/python3
"""Plain-PyTorch reference for bench/bench_policy.c: the same Qwen2
architecture and configuration.
  training (tiny, small): forward, mean token NLL, backward, AdamW;
      prints "torch WORKLOAD threads=N tokens/s=X"
  generation (tiny-gen, small-gen): 8 prompts of 16 tokens, 64 new tokens
      each, sampled at temperature 1 with a KV cache;
      prints "torch WORKLOAD threads=N gen_tokens/s=X"

  /usr/bin/python3 bench/policy_torch.py WORKLOAD [steps] [threads]
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "tiny": dict(vocab=512, d=128, layers=4, heads=4, kv=2, inter=384, B=16, T=128),
    "small": dict(vocab=2048, d=256, layers=6, heads=8, kv=2, inter=768, B=8, T=256),
    # Qwen2.5-0.5B shape (tied head), forward of 1 x 64 tokens and generation
    "qwen05b": dict(vocab=151936, d=896, layers=24, heads=14, kv=2, inter=4864, B=1, T=64, theta=1e6, tie=True),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(T, hd, theta=10000.0):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, H, K = c["d"], c["heads"], c["kv"]
        self.H, self.K, self.hd = H, K, d // H
        self.ln1, self.ln2 = RMSNorm(d), RMSNorm(d)
        self.q = nn.Linear(d, H * self.hd)
        self.k = nn.Linear(d, K * self.hd)
        self.v = nn.Linear(d, K * self.hd)
        self.o = nn.Linear(H * self.hd, d, bias=False)
        self.gate = nn.Linear(d, c["inter"], bias=False)
        self.up = nn.Linear(d, c["inter"], bias=False)
        self.down = nn.Linear(c["inter"], d, bias=False)

    def forward(self, x, cos, sin, mask, cache=None):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.K, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.K, self.hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        k = k.repeat_interleave(self.H // self.K, dim=1)
        v = v.repeat_interleave(self.H // self.K, dim=1)
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask).softmax(-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["d"])
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["d"])
        self.head = nn.Linear(c["d"], c["vocab"], bias=False)
        if c.get("tie"):
            self.head.weight = self.embed.weight
        cos, sin = rope_tables(max(c["T"], 128), c["d"] // c["heads"], c.get("theta", 10000.0))
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        self.register_buffer("mask", torch.full((c["T"], c["T"]), float("-inf")).triu(1))

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T], self.mask[:T, :T])
        return self.head(self.norm(x))

    def step(self, ids, caches, pos):
        """KV-cache forward of ids [B, n] at positions pos.. ; logits of the last one."""
        n = ids.shape[1]
        mask = torch.full((n, pos + n), float("-inf")).triu(pos + 1)
        x = self.embed(ids)
        for b, cache in zip(self.blocks, caches):
            x = b(x, self.cos[pos:pos + n], self.sin[pos:pos + n], mask, cache)
        return self.head(self.norm(x[:, -1]))


@torch.no_grad()
def generate(model, prompts, max_new):
    caches = [dict() for _ in model.blocks]
    logits = model.step(prompts, caches, 0)
    pos = prompts.shape[1]
    out = []
    for i in range(max_new):
        tok = torch.multinomial(torch.softmax(logits, -1), 1)
        out.append(tok)
        if i + 1 < max_new:
            logits = model.step(tok, caches, pos)
            pos += 1
    return torch.cat(out, 1)


def main():
    w = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = CONFIGS[w.replace("-gen", "")]
    model = Model(c)
    if w == "qwen05b":
        ids = torch.randint(0, c["vocab"], (1, 64))
        with torch.no_grad():
            model(ids)
            t0 = time.perf_counter()
            for _ in range(steps):
                model(ids)
            fwd = 64 * steps / (time.perf_counter() - t0)
        prompts = torch.randint(0, c["vocab"], (1, 16))
        t0 = time.perf_counter()
        for _ in range(steps):
            generate(model, prompts, 32)
        gen = 32 * steps / (time.perf_counter() - t0)
        print("torch qwen05b threads=%d forward_tokens/s=%.1f" % (threads, fwd))
        print("torch qwen05b-gen threads=%d gen_tokens/s=%.1f" % (threads, gen))
        return
    if w.endswith("-gen"):
        prompts = torch.randint(0, c["vocab"], (8, 16))
        generate(model, prompts, 64)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            generate(model, prompts, 64)
        tps = 8 * 64 * steps / (time.perf_counter() - t0)
        print("torch %s threads=%d gen_tokens/s=%.0f" % (w, threads, tps))
        return
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    ids = torch.randint(0, c["vocab"], (c["B"], c["T"]))
    total = 0.0
    for it in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab"]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it >= 2:
            total += time.perf_counter() - t0
    tps = c["B"] * c["T"] * steps / total
    print("torch %s threads=%d loss=%.4f step=%.1fms tokens/s=%.0f" % (w, threads, loss.item(), 1e3 * total / steps, tps))


if __name__ == "__main__":
    main()
