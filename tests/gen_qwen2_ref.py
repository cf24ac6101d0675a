#!/usr/bin/python3
"""Reference tensors for the Qwen2 policy (tests/test_qwen2_parity.c).

Builds the Hugging Face Qwen2ForCausalLM architecture in plain PyTorch (no
transformers package), with random weights, for two tiny configurations
(untied and tied LM head), and writes for each under tests/ref/qwen2_<name>/:
  config.json        HF keys
  model.safetensors  HF tensor names, f32
  ref.safetensors    tokens [B,T] i32, lengths [B] i32, logits [B,T,V]
                     (row t = distribution of token t+1; 0 on padding),
                     logprobs [B,T], entropy [B,T] (position t refers to token t;
                     t = 0 and padding are 0), hidden [N,B,T,d] (output of every
                     block, before the final norm; 0 on padding), the objective
                     weights w_logp, w_ent [B,T] and grad.<param> for the scalar
                     L = sum(w_logp * logprobs + w_ent * entropy).
Computed in float64 (stored as f32) so the reference is the exact answer.
Each sequence runs alone (no padding), which is what the C batch must match.
Run: /usr/bin/python3 tests/gen_qwen2_ref.py
"""
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype == torch.float32 or t.dtype == torch.float64:
            data, dt = t.to(torch.float32).numpy().tobytes(), "F32"
        elif t.dtype == torch.int32 or t.dtype == torch.int64:
            data, dt = t.to(torch.int32).numpy().tobytes(), "I32"
        else:
            raise ValueError(t.dtype)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope(x, theta):
    # x [H, T, hd], HF rotate_half convention
    hd, T = x.shape[-1], x.shape[-2]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = (torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]).to(x.dtype)
    cos = torch.cat([ang.cos(), ang.cos()], -1)
    sin = torch.cat([ang.sin(), ang.sin()], -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(P, cfg, ids):
    """ids: 1-D token ids of one sequence. Returns logits [T,V], block outputs [N,T,d]."""
    d, H, Hk = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, T = d // H, cfg["rms_norm_eps"], ids.shape[0]
    x = P["model.embed_tokens.weight"][ids]
    outs = []
    mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = lambda n: P["model.layers.%d.%s" % (i, n)]
        h = rmsnorm(x, p("input_layernorm.weight"), eps)
        q = h @ p("self_attn.q_proj.weight").T + p("self_attn.q_proj.bias")
        k = h @ p("self_attn.k_proj.weight").T + p("self_attn.k_proj.bias")
        v = h @ p("self_attn.v_proj.weight").T + p("self_attn.v_proj.bias")
        q = rope(q.view(T, H, hd).transpose(0, 1), cfg["rope_theta"])
        k = rope(k.view(T, Hk, hd).transpose(0, 1), cfg["rope_theta"])
        v = v.view(T, Hk, hd).transpose(0, 1)
        k = k.repeat_interleave(H // Hk, dim=0)  # HF repeat_kv: kv head g serves heads g*rep..
        v = v.repeat_interleave(H // Hk, dim=0)
        s = q @ k.transpose(1, 2) / math.sqrt(hd) + mask
        a = (s.softmax(-1) @ v).transpose(0, 1).reshape(T, H * hd)
        x = x + a @ p("self_attn.o_proj.weight").T
        h = rmsnorm(x, p("post_attention_layernorm.weight"), eps)
        g = h @ p("mlp.gate_proj.weight").T
        u = h @ p("mlp.up_proj.weight").T
        x = x + (torch.nn.functional.silu(g) * u) @ p("mlp.down_proj.weight").T
        outs.append(x)
    h = rmsnorm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return h @ head.T, torch.stack(outs)


def param_shapes(cfg):
    d, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    hd = d // cfg["num_attention_heads"]
    qd, kd = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    s = {"model.embed_tokens.weight": (V, d)}
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        s.update({
            pre + "input_layernorm.weight": (d,),
            pre + "self_attn.q_proj.weight": (qd, d), pre + "self_attn.q_proj.bias": (qd,),
            pre + "self_attn.k_proj.weight": (kd, d), pre + "self_attn.k_proj.bias": (kd,),
            pre + "self_attn.v_proj.weight": (kd, d), pre + "self_attn.v_proj.bias": (kd,),
            pre + "self_attn.o_proj.weight": (d, qd),
            pre + "post_attention_layernorm.weight": (d,),
            pre + "mlp.gate_proj.weight": (F, d), pre + "mlp.up_proj.weight": (F, d),
            pre + "mlp.down_proj.weight": (d, F),
        })
    s["model.norm.weight"] = (d,)
    if not cfg["tie_word_embeddings"]:
        s["lm_head.weight"] = (V, d)
    return s


def make(name, cfg, lengths, seed):
    g = torch.Generator().manual_seed(seed)
    P = {}
    for n, shp in param_shapes(cfg).items():
        if n.endswith("norm.weight"):
            t = 1.0 + 0.2 * torch.randn(shp, generator=g)
        elif n.endswith(".bias"):
            t = 0.2 * torch.randn(shp, generator=g)
        else:
            # Large enough that attention and the softmax are far from uniform.
            t = torch.randn(shp, generator=g) * (1.0 / math.sqrt(shp[1]))
            if n == "model.embed_tokens.weight" or n == "lm_head.weight":
                t = t * 2.0
        P[n] = t.to(torch.float32)  # what the checkpoint holds
    B, T, V = len(lengths), max(lengths), cfg["vocab_size"]
    N, d = cfg["num_hidden_layers"], cfg["hidden_size"]
    tokens = torch.randint(0, V, (B, T), generator=g, dtype=torch.int32)
    for b, L in enumerate(lengths):
        tokens[b, L:] = 0
    w_logp = torch.randn(B, T, generator=g)
    w_ent = torch.randn(B, T, generator=g)

    P64 = {n: t.to(torch.float64).requires_grad_(True) for n, t in P.items()}
    logits = torch.zeros(B, T, V, dtype=torch.float64)
    logprobs = torch.zeros(B, T, dtype=torch.float64)
    entropy = torch.zeros(B, T, dtype=torch.float64)
    hidden = torch.zeros(N, B, T, d, dtype=torch.float64)
    loss = 0.0
    for b, L in enumerate(lengths):
        if L == 0:
            continue
        ids = tokens[b, :L].long()
        lg, hs = forward(P64, cfg, ids)
        lsm = lg.log_softmax(-1)
        lp = lsm[:-1].gather(1, ids[1:, None])[:, 0]  # logp of token t+1 from row t
        ent = -(lsm.exp() * lsm).sum(-1)[:-1]
        loss = loss + (w_logp[b, 1:L].double() * lp).sum() + (w_ent[b, 1:L].double() * ent).sum()
        logits[b, :L] = lg.detach()
        logprobs[b, 1:L] = lp.detach()
        entropy[b, 1:L] = ent.detach()
        hidden[:, b, :L] = hs.detach()
    loss.backward()

    out = os.path.join(HERE, "ref", "qwen2_" + name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(cfg, architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
                       torch_dtype="float32"), f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(out, "model.safetensors"), P)
    ref = {"tokens": tokens, "lengths": torch.tensor(lengths, dtype=torch.int32), "logits": logits,
           "logprobs": logprobs, "entropy": entropy, "hidden": hidden, "w_logp": w_logp, "w_ent": w_ent,
           "loss": torch.tensor([float(loss)], dtype=torch.float64)}
    for n, t in P64.items():
        ref["grad." + n] = t.grad
    write_safetensors(os.path.join(out, "ref.safetensors"), ref)


BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=48, rms_norm_eps=1e-6, max_position_embeddings=128)
make("untied", dict(BASE, rope_theta=10000.0, tie_word_embeddings=False), [7, 4, 1, 6], 1234)
make("tied", dict(BASE, rope_theta=1000000.0, tie_word_embeddings=True, num_hidden_layers=3), [5, 0, 8], 99)
