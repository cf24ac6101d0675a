#!/usr/bin/env python3
"""Reference for tests/test_adamw.c: N steps of torch.optim.AdamW with
torch.nn.utils.clip_grad_norm_ and the learning-rate schedule of
runtime/adamw.h (linear warmup, then cosine to min_lr), on fixed gradients.

Writes tests/ref/adamw.safetensors (safetensors written by hand). For each
case C ("a", "b"): C.init [P] initial parameters (two tensors, flattened and
concatenated), C.grads [N, P] raw gradients fed at each step, C.params [N, P]
parameters after each step, C.norms [N] pre-clip global norms, C.lrs [N] the
learning rate used. The hyper-parameters are in the metadata as "C.lr", ...

Run: /usr/bin/python3 tests/gen_adamw_ref.py
"""
import math
import os

import torch

from st_write import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # Everything on: weight decay, warmup + cosine to a floor and past its end,
    # clipping active on some steps only.
    "a": dict(lr=0.05, min_lr=0.005, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1,
              schedule="cosine", warmup=3, decay_steps=6, clip=1.0, steps=12, seed=1),
    # torch defaults otherwise: constant lr, no clipping, larger eps.
    "b": dict(lr=0.01, min_lr=0.0, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01,
              schedule="constant", warmup=0, decay_steps=0, clip=0.0, steps=5, seed=2),
}

# Gradient scale per step: small ones stay under the clip threshold, large ones are clipped.
SCALES = [0.05, 2.0, 0.1, 1.5, 0.02, 3.0, 0.08, 0.5, 4.0, 0.03, 1.0, 0.15]


def lr_at(c, step):
    """Mirror of rl_lr_at in runtime/adamw.c (step = updates already done)."""
    lr, warm = c["lr"], c["warmup"]
    if warm > 0 and step < warm:
        return lr * (step + 1) / warm
    if c["schedule"] == "constant" or c["decay_steps"] <= 0:
        return lr
    k = step - max(warm, 0)
    if k >= c["decay_steps"]:
        return c["min_lr"]
    return c["min_lr"] + (lr - c["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * k / c["decay_steps"]))


def run_case(c):
    g = torch.Generator().manual_seed(c["seed"])
    p0 = torch.nn.Parameter(torch.randn(5, 3, generator=g))
    p1 = torch.nn.Parameter(torch.randn(7, generator=g))
    params = [p0, p1]
    init = torch.cat([p.detach().flatten() for p in params]).clone()
    opt = torch.optim.AdamW(params, lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
                            weight_decay=c["weight_decay"])
    grads, after, norms, lrs = [], [], [], []
    for step in range(c["steps"]):
        flat = torch.randn(init.numel(), generator=g) * SCALES[step % len(SCALES)]
        grads.append(flat.clone())
        p0.grad = flat[:15].reshape(5, 3).clone()
        p1.grad = flat[15:].clone()
        if c["clip"] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, c["clip"]))
        else:
            norm = float(flat.double().norm())
        lr = lr_at(c, step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        opt.zero_grad()
        after.append(torch.cat([p.detach().flatten() for p in params]).clone())
        norms.append(norm)
        lrs.append(lr)
    return {
        "init": init,
        "grads": torch.stack(grads),
        "params": torch.stack(after),
        "norms": torch.tensor(norms, dtype=torch.float32),
        "lrs": torch.tensor(lrs, dtype=torch.float32),
    }


def main():
    torch.manual_seed(0)
    tensors, meta = {}, {}
    for name, c in CASES.items():
        for k, v in run_case(c).items():
            tensors["%s.%s" % (name, k)] = v
        for k, v in c.items():
            meta["%s.%s" % (name, k)] = repr(v) if not isinstance(v, str) else v
    os.makedirs(os.path.join(HERE, "ref"), exist_ok=True)
    write_safetensors(os.path.join(HERE, "ref", "adamw.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
