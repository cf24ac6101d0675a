#!/usr/bin/python3
"""Writes tests/ref/kernels.safetensors: inputs, upstream gradients, and
PyTorch's forward outputs and input gradients for every kernel in
runtime/kernels.h. tests/test_kernels_torch.c runs our kernels on the same
inputs and compares.

References are computed by autograd in float64 from the float32 inputs, then
stored as float32, so they are the best f32 answer rather than one particular
f32 rounding. Run: /usr/bin/python3 tests/gen_kernel_refs.py
"""
import os

import torch

from st_write import write_safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref", "kernels.safetensors")

tensors = {}  # name -> tensor (float32 or int32), kept in insertion order


def put(name, t):
    t = t.detach()
    if t.dtype == torch.float64:
        t = t.float()
    tensors[name] = t.contiguous()


def rand(*shape, scale=1.0):
    # Inputs are created in f32 (what the C side reads), then promoted.
    return (torch.randn(*shape) * scale).float()


def grads(fn, inputs, names, prefix, dout=None):
    """Runs fn on float64 copies of inputs, backprops dout, stores everything."""
    xs = [x.double().requires_grad_(True) for x in inputs]
    out = fn(*xs)
    if dout is None:
        dout = rand(*out.shape)
    out.backward(dout.double())
    for n, x in zip(names, inputs):
        put(f"{prefix}.{n}", x)
    put(f"{prefix}.dout", dout)
    put(f"{prefix}.out", out)
    for n, x in zip(names, xs):
        put(f"{prefix}.d{n}", x.grad)


def write(path, ts):
    n = write_safetensors(path, ts, {"generator": "tests/gen_kernel_refs.py", "torch": torch.__version__})
    print(f"wrote {path}: {len(ts)} tensors, {n} bytes")


def main():
    torch.manual_seed(1234)

    # matmul, every transpose combination: C[M,N] = op(A) op(B).
    M, N, K = 7, 5, 6
    for ta in (0, 1):
        for tb in (0, 1):
            a = rand(K, M) if ta else rand(M, K)
            b = rand(N, K) if tb else rand(K, N)
            grads(lambda a, b: (a.t() if ta else a) @ (b.t() if tb else b), [a, b], ["a", "b"],
                  f"matmul{ta}{tb}")

    # linear: torch layout weight [OC, C].
    x, w, bias = rand(9, 6), rand(4, 6, scale=0.4), rand(4)
    grads(lambda x, w, b: torch.nn.functional.linear(x, w, b), [x, w, bias], ["x", "w", "b"], "linear")

    x, bias = rand(5, 70), rand(70)
    grads(lambda x, b: x + b, [x, bias], ["x", "b"], "bias_add")

    a, b = rand(31), rand(31)
    grads(lambda a, b: a + b, [a, b], ["a", "b"], "add")
    grads(lambda a, b: a * b, [a, b], ["a", "b"], "mul")
    grads(lambda a: a * 0.37, [a], ["a"], "scale")

    x = rand(40, scale=3.0)
    grads(lambda x: torch.nn.functional.silu(x), [x], ["x"], "silu")

    # RMSNorm (torch 1.13 has no nn.RMSNorm: the formula, as in Qwen2), eps 1e-6.
    x, w = rand(6, 16), 1.0 + rand(16, scale=0.3)
    grads(lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w, [x, w], ["x", "w"],
          "rmsnorm")

    x = rand(4, 10, scale=2.0)
    grads(lambda x: torch.softmax(x, -1), [x], ["x"], "softmax")

    # log-softmax + gather; target -1 = ignored position (output 0, no gradient).
    logits = rand(6, 13, scale=2.0)
    target = torch.tensor([3, 0, 12, -1, 7, 3], dtype=torch.int32)
    keep = (target >= 0)

    def lsg(lg):
        lp = torch.log_softmax(lg, -1)
        g = lp.gather(1, target.clamp(min=0).long().unsqueeze(1)).squeeze(1)
        return torch.where(keep, g, torch.zeros_like(g))

    put("logsoftmax.target", target)
    grads(lsg, [logits], ["logits"], "logsoftmax")

    table = rand(10, 8)
    ids = torch.tensor([4, 9, 0, 4, 4, 2, 7, 9, 1, 4, 0, 5], dtype=torch.int32)
    put("embedding.ids", ids)
    grads(lambda t: torch.nn.functional.embedding(ids.long(), t), [table], ["table"], "embedding")

    pred, tgt = rand(37), rand(37)
    grads(lambda p, t: torch.nn.functional.mse_loss(p, t).reshape(1), [pred, tgt], ["pred", "target"],
          "mse", dout=torch.tensor([0.7]))

    write(OUT, tensors)


if __name__ == "__main__":
    main()
