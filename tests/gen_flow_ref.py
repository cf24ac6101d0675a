"""Reference tensors for the flow network (tests/test_flow_parity.c).

Builds RLFR's SimpleMLPAdaLN flow network in plain PyTorch (float64), with
every parameter random (also those the real init zeroes, so every path is
exercised), runs a forward and a backward and the flow-matching loss, and
writes tests/ref/flow_ref.safetensors by hand (struct + json).

Run: /usr/bin/python3 tests/gen_flow_ref.py
"""
import json
import math
import os

import torch

from st_write import write_safetensors

D, W, K, FREQ, EPS, N = 12, 16, 2, 256, 1e-6, 7


def sinusoid(v, dim=FREQ):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = v[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def linear(p, name, x):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def param_shapes():
    s = [("input_proj", (W, D)), ("cond_embed", (W, D)),
         ("time_embed.mlp.0", (W, FREQ)), ("time_embed.mlp.2", (W, W)),
         ("layer_embed.mlp.0", (W, FREQ)), ("layer_embed.mlp.2", (W, W))]
    out = []
    for name, shp in s:
        out += [(name + ".weight", shp), (name + ".bias", (shp[0],))]
    for i in range(K):
        out += [(f"res_blocks.{i}.adaLN_modulation.1.weight", (3 * W, W)),
                (f"res_blocks.{i}.adaLN_modulation.1.bias", (3 * W,)),
                (f"res_blocks.{i}.in_ln.weight", (W,)),
                (f"res_blocks.{i}.mlp.0.weight", (W, W)), (f"res_blocks.{i}.mlp.0.bias", (W,)),
                (f"res_blocks.{i}.mlp.2.weight", (W, W)), (f"res_blocks.{i}.mlp.2.bias", (W,))]
    out += [("final_layer.adaLN_modulation.1.weight", (2 * W, W)),
            ("final_layer.adaLN_modulation.1.bias", (2 * W,)),
            ("final_layer.norm_final.weight", (W,)),
            ("final_layer.linear.weight", (D, W)), ("final_layer.linear.bias", (D,))]
    return out


def flow(p, x, t, c, tau):
    def embed(prefix, v):
        h = linear(p, prefix + ".mlp.0", sinusoid(v))
        return linear(p, prefix + ".mlp.2", torch.nn.functional.silu(h))

    h = linear(p, "input_proj", x)
    y = embed("time_embed", t) + linear(p, "cond_embed", c) + embed("layer_embed", tau)
    sy = torch.nn.functional.silu(y)
    for i in range(K):
        b = f"res_blocks.{i}"
        shift, scale, gate = linear(p, b + ".adaLN_modulation.1", sy).chunk(3, dim=-1)
        m = rmsnorm(h, p[b + ".in_ln.weight"]) * (1 + scale) + shift
        m = linear(p, b + ".mlp.2", torch.nn.functional.silu(linear(p, b + ".mlp.0", m)))
        h = h + gate * m
    shift, scale = linear(p, "final_layer.adaLN_modulation.1", sy).chunk(2, dim=-1)
    h = rmsnorm(h, p["final_layer.norm_final.weight"]) * (1 + scale) + shift
    return linear(p, "final_layer.linear", h)


def main():
    torch.manual_seed(1234)
    p = {}
    for name, shp in param_shapes():
        fan = shp[-1]
        if name.endswith("in_ln.weight") or name.endswith("norm_final.weight"):
            v = 1 + 0.3 * torch.randn(shp, dtype=torch.float64)
        else:
            v = torch.randn(shp, dtype=torch.float64) / math.sqrt(fan)
        p[name] = v.requires_grad_(True)
    x = torch.randn(N, D, dtype=torch.float64, requires_grad=True)
    c = torch.randn(N, D, dtype=torch.float64, requires_grad=True)
    t = torch.rand(N, dtype=torch.float64)
    tau = torch.tensor([0.25, 0.5, 0.75, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    dout = torch.randn(N, D, dtype=torch.float64)
    # Round inputs and weights to f32 first so both sides see the same numbers.
    with torch.no_grad():
        for v in list(p.values()) + [x, c, t, tau, dout]:
            v.copy_(v.float().double())
    out = flow(p, x, t, c, tau)
    (out * dout).sum().backward()
    tensors = {f"param.{k}": v for k, v in p.items()}
    tensors.update({"in.x": x, "in.c": c, "in.t": t, "in.tau": tau, "in.dout": dout, "out.v": out})
    tensors.update({f"grad.{k}": v.grad for k, v in p.items()})
    tensors.update({"grad.x": x.grad, "grad.c": c.grad})

    # Flow-matching loss: x_t = t x1 + (1-t) eps, u = x1 - eps,
    # loss_r = mean_j (v - u)^2, objective sum_r coef_r loss_r.
    for v in p.values():
        v.grad = None
    x1 = torch.randn(N, D, dtype=torch.float64).float().double()
    eps = torch.randn(N, D, dtype=torch.float64).float().double()
    coef = torch.rand(N, dtype=torch.float64).float().double()
    xt = t[:, None] * x1 + (1 - t[:, None]) * eps
    v = flow(p, xt, t, c.detach(), tau)
    loss = ((v - (x1 - eps)) ** 2).mean(-1)
    (coef * loss).sum().backward()
    tensors.update({"fm.x1": x1, "fm.eps": eps, "fm.coef": coef, "fm.loss": loss})
    tensors.update({f"fmgrad.{k}": v.grad for k, v in p.items()})
    tensors["sinusoid"] = sinusoid(t)

    meta = {"config": json.dumps({"dim": D, "width": W, "depth": K, "eps": EPS}), "rows": str(N)}
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref", "flow_ref.safetensors")
    write_safetensors(out_path, tensors, meta)
    print(out_path, os.path.getsize(out_path), "bytes")


if __name__ == "__main__":
    main()
