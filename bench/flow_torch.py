"""Plain-PyTorch reference for bench/flow.sh: the same SimpleMLPAdaLN flow
network (tests/gen_flow_ref.py builds it for parity), float32, the same
workloads as bench/bench_flow.c:
  train: x_t = t x1 + (1-t) eps, v = net(x_t, t, c, tau),
         loss = mean((v - (x1 - eps))^2), backward into all parameters;
  score: no_grad forward at t = 0.8 and the per-row loss.
Usage: /usr/bin/python3 bench/flow_torch.py WIDTH DEPTH N REPS THREADS [wall|cpu]
(cpu: process CPU time instead of wall time, as bench_flow's option.)
Prints: torch width=W depth=K n=N threads=P train=X score=Y (vectors/s, medians)."""
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Embed(nn.Module):
    def __init__(self, w, freq=256):
        super().__init__()
        self.freq = freq
        self.mlp = nn.Sequential(nn.Linear(freq, w), nn.SiLU(), nn.Linear(w, w))

    def forward(self, v):
        half = self.freq // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        a = v[:, None] * f[None]
        return self.mlp(torch.cat([torch.cos(a), torch.sin(a)], dim=-1))


class RMSNorm(nn.Module):
    def __init__(self, w, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(w))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.in_ln = RMSNorm(w)
        self.mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(w, 3 * w))

    def forward(self, x, y):
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(self.in_ln(x) * (1 + scale) + shift)


class Flow(nn.Module):
    def __init__(self, d, w, depth):
        super().__init__()
        self.input_proj = nn.Linear(d, w)
        self.cond_embed = nn.Linear(d, w)
        self.time_embed = Embed(w)
        self.layer_embed = Embed(w)
        self.res_blocks = nn.ModuleList([Block(w) for _ in range(depth)])
        self.norm_final = RMSNorm(w)
        self.final_mod = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.linear = nn.Linear(w, d)
        for p in self.parameters():
            nn.init.uniform_(p, -0.05, 0.05)

    def forward(self, x, t, c, tau):
        x = self.input_proj(x)
        y = self.time_embed(t) + self.cond_embed(c) + self.layer_embed(tau)
        for b in self.res_blocks:
            x = b(x, y)
        shift, scale = self.final_mod(y).chunk(2, dim=-1)
        return self.linear(self.norm_final(x) * (1 + scale) + shift)


def main():
    args = sys.argv[1:6] + ["128", "4", "4096", "10", "1"][len(sys.argv[1:6]):]
    w, depth, n, reps, threads = (int(a) for a in args)
    clock = time.process_time if sys.argv[6:7] == ["cpu"] else time.perf_counter
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Flow(w, w, depth)
    x1, eps, c = torch.randn(n, w), torch.randn(n, w), torch.randn(n, w)
    t = torch.sigmoid(torch.randn(n))
    tau = 0.25 * (1 + torch.arange(n) % 3).float()
    t08 = torch.full((n,), 0.8)
    tt, ts = [], []
    for r in range(reps + 2):
        a = clock()
        net.zero_grad(set_to_none=False)
        xt = t[:, None] * x1 + (1 - t[:, None]) * eps
        v = net(xt, t, c, tau)
        loss = ((v - (x1 - eps)) ** 2).mean()
        loss.backward()
        b = clock()
        with torch.no_grad():
            xt = t08[:, None] * x1 + (1 - t08[:, None]) * eps
            v = net(xt, t08, c, tau)
            row = ((v - (x1 - eps)) ** 2).mean(-1)
        e = clock()
        if r >= 2:
            tt.append(b - a)
            ts.append(e - b)
    print(f"torch width={w} depth={depth} n={n} threads={threads} "
          f"train={n / statistics.median(tt):.0f} score={n / statistics.median(ts):.0f}")


if __name__ == "__main__":
    main()
