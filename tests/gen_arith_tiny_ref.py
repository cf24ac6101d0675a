#!/usr/bin/python3
"""The shipped model models/arith-tiny read in Hugging Face terms, in plain
PyTorch (no transformers package): config.json must carry the
Qwen2ForCausalLM keys, model.safetensors exactly the tensor names and shapes
of Qwen2ForCausalLM for that config (tied LM head: no lm_head.weight), and
the Qwen2 forward pass over those tensors gives the reference that
tests/test_arith_tiny.c matches with rlfr's loader and forward:
  tokens [B,T] i32, lengths [B] i32, logits [B,T,V] (row t = distribution of
  token t+1; 0 on padding), logprobs [B,T] and entropy [B,T] (position t
  refers to token t; t = 0 and padding are 0).
Computed in float64 from the f32 weights. Rerun after re-making the model:
    /usr/bin/python3 tests/gen_arith_tiny_ref.py
writes tests/ref/arith_tiny.safetensors."""
import json
import math
import os
import struct

import torch

from st_write import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "models", "arith-tiny")


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + a:base + b]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).double()
    return out


def hf_names(cfg):
    d, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    hd = d // cfg["num_attention_heads"]
    qd, kd = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    s = {"model.embed_tokens.weight": [V, d], "model.norm.weight": [d]}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        s.update({p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
                  p + "self_attn.q_proj.weight": [qd, d], p + "self_attn.q_proj.bias": [qd],
                  p + "self_attn.k_proj.weight": [kd, d], p + "self_attn.k_proj.bias": [kd],
                  p + "self_attn.v_proj.weight": [kd, d], p + "self_attn.v_proj.bias": [kd],
                  p + "self_attn.o_proj.weight": [d, qd],
                  p + "mlp.gate_proj.weight": [F, d], p + "mlp.up_proj.weight": [F, d],
                  p + "mlp.down_proj.weight": [d, F]})
    if not cfg["tie_word_embeddings"]:
        s["lm_head.weight"] = [V, d]
    return s


def norm(x, w, eps):
    return w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate(x, theta):
    """RoPE, Hugging Face rotate_half layout; x [heads, T, hd]."""
    hd, T = x.shape[-1], x.shape[-2]
    freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    half = hd // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def logits_of(W, cfg, ids):
    d, H, K = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, T = d // H, cfg["rms_norm_eps"], len(ids)
    x = W["model.embed_tokens.weight"][ids]
    causal = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        w = lambda n: W["model.layers.%d.%s" % (i, n)]
        h = norm(x, w("input_layernorm.weight"), eps)
        q = (h @ w("self_attn.q_proj.weight").T + w("self_attn.q_proj.bias")).view(T, H, hd).transpose(0, 1)
        k = (h @ w("self_attn.k_proj.weight").T + w("self_attn.k_proj.bias")).view(T, K, hd).transpose(0, 1)
        v = (h @ w("self_attn.v_proj.weight").T + w("self_attn.v_proj.bias")).view(T, K, hd).transpose(0, 1)
        q, k = rotate(q, cfg["rope_theta"]), rotate(k, cfg["rope_theta"])
        k, v = k.repeat_interleave(H // K, 0), v.repeat_interleave(H // K, 0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + causal, -1) @ v
        x = x + att.transpose(0, 1).reshape(T, d) @ w("self_attn.o_proj.weight").T
        h = norm(x, w("post_attention_layernorm.weight"), eps)
        x = x + (torch.nn.functional.silu(h @ w("mlp.gate_proj.weight").T) * (h @ w("mlp.up_proj.weight").T)) \
            @ w("mlp.down_proj.weight").T
    h = norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return h @ head.T


cfg = json.load(open(os.path.join(MODEL, "config.json")))
assert cfg["architectures"] == ["Qwen2ForCausalLM"] and cfg["model_type"] == "qwen2", cfg
assert cfg["hidden_act"] == "silu", cfg
for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "intermediate_size", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings"):
    assert key in cfg, key
W = read_safetensors(os.path.join(MODEL, "model.safetensors"))
want = hf_names(cfg)
assert sorted(W) == sorted(want), sorted(set(W) ^ set(want))
for n, shape in want.items():
    assert list(W[n].shape) == shape, (n, list(W[n].shape), shape)

# Token ids: the ChatML frame around random ids, as real prompts are framed.
tok = json.load(open(os.path.join(MODEL, "tokenizer.json")))
special = {t["content"]: t["id"] for t in tok["added_tokens"]}
g = torch.Generator().manual_seed(11)
V = cfg["vocab_size"]
lengths = [20, 13, 17]
B, T = len(lengths), max(lengths)
tokens = torch.zeros(B, T, dtype=torch.int64)
for b, L in enumerate(lengths):
    ids = torch.randint(0, V - len(special), (L,), generator=g)
    ids[0], ids[-1] = special["<|im_start|>"], special["<|im_end|>"]
    tokens[b, :L] = ids
logits = torch.zeros(B, T, V, dtype=torch.float64)
logprobs = torch.zeros(B, T, dtype=torch.float64)
entropy = torch.zeros(B, T, dtype=torch.float64)
for b, L in enumerate(lengths):
    lg = logits_of(W, cfg, tokens[b, :L])
    logits[b, :L] = lg
    lsm = torch.log_softmax(lg, -1)
    for t in range(1, L):
        logprobs[b, t] = lsm[t - 1, tokens[b, t]]
        entropy[b, t] = -(lsm[t - 1].exp() * lsm[t - 1]).sum()
write_safetensors(os.path.join(HERE, "ref", "arith_tiny.safetensors"),
                  {"tokens": tokens.int(), "lengths": torch.tensor(lengths, dtype=torch.int32), "logits": logits,
                   "logprobs": logprobs, "entropy": entropy})
print("wrote tests/ref/arith_tiny.safetensors (%d tensors of the bundle checked)" % len(want))
