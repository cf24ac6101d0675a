#!/usr/bin/python3
"""Plain-PyTorch reference for bench/rl_step.sh: one full RLFR step on the
tiny Qwen2 configuration (vocab 512, hidden 128, 4 layers, 4 heads, 2 KV heads,
intermediate 384, tied head), random weights, with the same prompts as the
rlfr side (PROMPTS.json, written by bench/bench_rl_step.lua):

  rollout : prefill each prompt once, copy its KV cache to its G samples,
            sample max_new tokens at temperature 1 with a KV cache (stop at
            <|im_end|>), decode the responses and grade them with the same
            rule as rlfr's verifier (last \\boxed{}, 1 / 0.5 / 0);
  score   : frozen forward of the rollouts with hidden states of blocks
            round(p*N) for p = 0.25, 0.5, 0.75 (the PPO old log-probs),
            token_pre latents -> flow network (SimpleMLPAdaLN, width 128,
            depth 4) score at t = 0.8 with w(t) = t/(1-t); GRPO advantages
            plus flow rewards (minmax, threshold 0.6, top-15, beta 0.01);
  update  : policy forward + PPO clipped loss (seq_mean_token_mean) +
            backward + AdamW (grad clip 1); flow loss on the accepted
            rollouts (rejection sampling) + backward + AdamW.

  /usr/bin/python3 bench/rl_step_torch.py PROMPTS.json TOKENIZER.json [steps] [threads]
prints one line per step and "torch rl_step mean total=X rollout=.. score=.. update=.."
"""
import json
import math
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = dict(d=128, layers=4, heads=4, kv=2, inter=384, theta=10000.0, eps=1e-6)
FLOW_W, FLOW_K = 128, 4
TAPS = (0.25, 0.5, 0.75)
T_SCORE = 0.8
BETA, THRESH, TOPK = 0.01, 0.6, 15


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, H, K = c["d"], c["heads"], c["kv"]
        self.H, self.K, self.hd = H, K, d // H
        self.ln1, self.ln2 = RMSNorm(d, c["eps"]), RMSNorm(d, c["eps"])
        self.q = nn.Linear(d, H * self.hd)
        self.k = nn.Linear(d, K * self.hd)
        self.v = nn.Linear(d, K * self.hd)
        self.o = nn.Linear(H * self.hd, d, bias=False)
        self.gate = nn.Linear(d, c["inter"], bias=False)
        self.up = nn.Linear(d, c["inter"], bias=False)
        self.down = nn.Linear(c["inter"], d, bias=False)

    def forward(self, x, cos, sin, mask, cache=None):
        """x [B, n, d]; cos/sin [B, 1, n, hd]; mask additive [B, 1, n, S]."""
        B, n, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, n, self.H, self.hd).transpose(1, 2)
        k = self.k(h).view(B, n, self.K, self.hd).transpose(1, 2)
        v = self.v(h).view(B, n, self.K, self.hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        k = k.repeat_interleave(self.H // self.K, dim=1)
        v = v.repeat_interleave(self.H // self.K, dim=1)
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask).softmax(-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, n, -1))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Policy(nn.Module):
    def __init__(self, c, vocab):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(vocab, c["d"])
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["d"], c["eps"])
        hd = c["d"] // c["heads"]
        self.inv = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def rope(self, pos):
        ang = pos.float()[..., None] * self.inv
        emb = torch.cat([ang, ang], -1)[:, None]
        return emb.cos(), emb.sin()

    def forward(self, ids, pos, mask, caches=None, taps=()):
        x = self.embed(ids)
        cos, sin = self.rope(pos)
        hidden = []
        for j, b in enumerate(self.blocks):
            x = b(x, cos, sin, mask, caches[j] if caches is not None else None)
            if j in taps:
                hidden.append(x)
        return F.linear(self.norm(x), self.embed.weight), hidden


def sinusoid(v, dim=256):
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = v[:, None] * f[None]
    return torch.cat([torch.cos(a), torch.sin(a)], -1)


class Embed(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(256, w), nn.SiLU(), nn.Linear(w, w))

    def forward(self, v):
        return self.mlp(sinusoid(v))


class ResBlock(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.in_ln = RMSNorm(w)
        self.mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 3 * w))

    def forward(self, x, y):
        shift, scale, gate = self.ada(y).chunk(3, -1)
        return x + gate * self.mlp(self.in_ln(x) * (1 + scale) + shift)


class Flow(nn.Module):
    """SimpleMLPAdaLN v(x, t, c, tau) (DESIGN.md section 2)."""

    def __init__(self, d, w, K):
        super().__init__()
        self.inp = nn.Linear(d, w)
        self.t_emb, self.tau_emb = Embed(w), Embed(w)
        self.c_emb = nn.Linear(d, w)
        self.blocks = nn.ModuleList([ResBlock(w) for _ in range(K)])
        self.norm = RMSNorm(w)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out = nn.Linear(w, d)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in [b.ada[1] for b in self.blocks] + [self.ada[1], self.out]:
            nn.init.zeros_(m.weight)

    def forward(self, x, t, c, tau):
        h = self.inp(x)
        y = self.t_emb(t) + self.c_emb(c) + self.tau_emb(tau)
        for b in self.blocks:
            h = b(h, y)
        shift, scale = self.ada(y).chunk(2, -1)
        return self.out(self.norm(h) * (1 + scale) + shift)


def byte_decoder():
    """Inverse of the GPT-2 byte-level alphabet (printable bytes map to
    themselves, the others to 256 + n in order)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Decoder:
    def __init__(self, path):
        tj = json.load(open(path))
        self.tok = {i: t for t, i in tj["model"]["vocab"].items()}
        self.special = set()
        for a in tj.get("added_tokens", []):
            self.tok[a["id"]] = a["content"]
            if a.get("special"):
                self.special.add(a["id"])
        self.bd = byte_decoder()

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            if i in self.special:
                continue
            for ch in self.tok.get(i, ""):
                out.append(self.bd.get(ch, 0x3F))
        return out.decode("utf-8", "replace")


def last_box(text):
    """Content of the last \\boxed{...} (nested braces) and the box count."""
    starts = [m.end() for m in re.finditer(r"\\boxed\{", text)]
    if not starts:
        return None, 0
    i, depth = starts[-1], 1
    j = i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return (text[i:j - 1] if depth == 0 else None), len(starts)


def grade(text, answer, finished):
    if not finished:
        return 0.0
    box, n = last_box(text)
    if box is None or n >= 5:
        return 0.0
    norm = lambda s: re.sub(r"\s+", "", s).replace("\\left", "").replace("\\right", "")
    return 1.0 if norm(box) == norm(answer) else 0.5


@torch.no_grad()
def rollout(pol, prompts, G, max_new, eos):
    """Left-padded prefill of the B prompts, caches copied to B*G samples,
    then KV-cache decoding of max_new tokens."""
    B = len(prompts)
    Tp = max(len(p) for p in prompts)
    ids = torch.zeros(B, Tp, dtype=torch.long)
    valid = torch.zeros(B, Tp, dtype=torch.bool)
    for b, p in enumerate(prompts):
        ids[b, Tp - len(p):] = torch.tensor(p)
        valid[b, Tp - len(p):] = True
    pos = (valid.long().cumsum(1) - 1).clamp(min=0)
    causal = torch.ones(Tp, Tp, dtype=torch.bool).tril()
    # a padding query sees itself only, so no row is all -inf (NaN)
    allowed = (causal[None] & valid[:, None, :]) | torch.eye(Tp, dtype=torch.bool)[None]
    mask = torch.zeros(B, 1, Tp, Tp).masked_fill(~allowed[:, None], float("-inf"))
    caches = [dict() for _ in pol.blocks]
    logits, _ = pol(ids, pos, mask, caches)
    for c in caches:
        c["k"] = c["k"].repeat_interleave(G, 0)
        c["v"] = c["v"].repeat_interleave(G, 0)
    N = B * G
    logits = logits[:, -1].repeat_interleave(G, 0)
    valid = valid.repeat_interleave(G, 0)
    nextpos = torch.tensor([len(p) for p in prompts]).repeat_interleave(G)
    out = torch.zeros(N, max_new, dtype=torch.long)
    lps = torch.zeros(N, max_new)
    done = torch.zeros(N, dtype=torch.bool)
    lens = torch.zeros(N, dtype=torch.long)
    finished = torch.zeros(N, dtype=torch.bool)
    for i in range(max_new):
        logp = torch.log_softmax(logits, -1)
        tok = torch.multinomial(logp.exp(), 1)[:, 0]
        live = ~done
        out[live, i] = tok[live]
        lps[live, i] = logp[live].gather(1, tok[live, None])[:, 0]
        lens[live] += 1
        hit = live & (tok == eos)
        finished |= hit
        done |= hit
        if bool(done.all()) or i + 1 == max_new:
            break
        valid = torch.cat([valid, torch.ones(N, 1, dtype=torch.bool)], 1)
        mask = torch.zeros(N, 1, 1, valid.shape[1]).masked_fill(~valid[:, None, None], float("-inf"))
        logits, _ = pol(tok[:, None], nextpos[:, None], mask, caches)
        logits = logits[:, -1]
        nextpos = nextpos + 1
    return out, lps, lens, finished


def seq_forward(pol, seqs, taps=()):
    """Right-padded causal forward: log p(token_t | <t), entropy, taps."""
    N, T = seqs["ids"].shape
    valid = seqs["valid"]
    pos = torch.arange(T).expand(N, T)
    allowed = (torch.ones(T, T, dtype=torch.bool).tril()[None] & valid[:, None, :]) | torch.eye(T, dtype=torch.bool)[None]
    mask = torch.zeros(N, 1, T, T).masked_fill(~allowed[:, None], float("-inf"))
    logits, hidden = pol(seqs["ids"], pos, mask, taps=taps)
    logp = torch.log_softmax(logits[:, :-1], -1)
    lp = torch.zeros(N, T)
    lp[:, 1:] = logp.gather(2, seqs["ids"][:, 1:, None])[..., 0]
    ent = torch.zeros(N, T)
    ent[:, 1:] = -(logp.exp() * logp).sum(-1)
    return lp, ent, hidden


def latents(hidden, rmask, L):
    """token_pre: target h_k, condition h_{k+1}, for response tokens k with
    k+1 inside the sequence; rows for every tapped layer."""
    N, T = rmask.shape
    pair = rmask.bool().clone()
    pair[:, -1] = False
    pair[:, :-1] &= torch.arange(1, T)[None] < L[:, None]
    idx = pair.nonzero()
    xs, cs, taus = [], [], []
    nl = CFG["layers"]
    for h, j in zip(hidden, TAP_IDX):
        xs.append(h[idx[:, 0], idx[:, 1]])
        cs.append(h[idx[:, 0], idx[:, 1] + 1])
        taus.append(torch.full((idx.shape[0],), j / nl))
    return torch.cat(xs).detach(), torch.cat(cs).detach(), torch.cat(taus), idx, pair


def flow_token_loss(flow, x1, c, tau, gen):
    eps = torch.randn(x1.shape, generator=gen)
    t = torch.full((x1.shape[0],), T_SCORE)
    xt = T_SCORE * x1 + (1 - T_SCORE) * eps
    return (flow(xt, t, c, tau) - (x1 - eps)).pow(2).mean(-1)


def per_token(vals, idx, n_tap, N, T):
    """Mean over tapped layers of per-row values, scattered to [N, T]."""
    M = idx.shape[0]
    out = torch.zeros(N, T)
    out[idx[:, 0], idx[:, 1]] = vals.view(n_tap, M).mean(0)
    return out


def shape_advantages(R, score, smask, rmask, G):
    N, T = rmask.shape
    Rg = R.view(-1, G)
    adv = ((Rg - Rg.mean(1, keepdim=True)) / (Rg.std(1, keepdim=True) + 1e-6)).view(N)
    r = torch.zeros(N, T)
    for i in range(N):
        sel = smask[i].nonzero()[:, 0]
        if sel.numel() < 2:
            continue
        s = score[i, sel]
        lo, hi = s.min(), s.max()
        if hi <= lo:
            continue
        sh = (s - lo) / (hi - lo)
        keep = (sh > THRESH).nonzero()[:, 0]
        if keep.numel() > TOPK:
            keep = keep[sh[keep].topk(TOPK).indices]
        r[i, sel[keep]] = -BETA * sh[keep]
    rho = r.clone()
    last = (rmask * torch.arange(T)[None]).argmax(1)
    rho[torch.arange(N), last] += adv
    A = rho.flip(1).cumsum(1).flip(1) * rmask
    return A, r


def step(pol, flow, popt, fopt, prompts, answers, G, max_new, eos, dec, gen):
    t0 = time.perf_counter()
    resp, slp, rlen, fin = rollout(pol, [p for p in prompts], G, max_new, eos)
    R = torch.zeros(len(resp))
    for i in range(len(resp)):
        text = dec.decode(resp[i, :rlen[i]].tolist())
        R[i] = grade(text, answers[i // G], bool(fin[i]))
    # right-padded full sequences
    N = len(resp)
    plen = torch.tensor([len(prompts[i // G]) for i in range(N)])
    L = plen + rlen
    T = int(L.max())
    ids = torch.zeros(N, T, dtype=torch.long)
    rmask = torch.zeros(N, T)
    for i in range(N):
        p = prompts[i // G]
        ids[i, :len(p)] = torch.tensor(p)
        ids[i, len(p):L[i]] = resp[i, :rlen[i]]
        rmask[i, len(p):L[i]] = 1
    seqs = {"ids": ids, "valid": torch.arange(T)[None] < L[:, None]}
    t1 = time.perf_counter()
    with torch.no_grad():
        old_lp, _, hidden = seq_forward(pol, seqs, taps=TAP_IDX)
        x1, c, tau, idx, smask = latents(hidden, rmask, L)
        tl = flow_token_loss(flow, x1, c, tau, gen)
        w = T_SCORE / (1 - T_SCORE)
        score = per_token(w * tl, idx, len(TAP_IDX), N, T)
        A, r = shape_advantages(R, score, smask, rmask, G)
    t2 = time.perf_counter()
    lp, ent, _ = seq_forward(pol, seqs)
    ratio = torch.exp(lp - old_lp)
    pg = torch.max(-A * ratio, -A * ratio.clamp(0.8, 1.2))
    per_seq = (pg * rmask).sum(1) / rmask.sum(1).clamp(min=1)
    loss = per_seq.mean()
    popt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(pol.parameters(), 1.0)
    popt.step()
    # online flow update, rejection sampling: correct rollouts only
    wts = (R >= 1).float()
    tl = per_token(flow_token_loss(flow, x1, c, tau, gen), idx, len(TAP_IDX), N, T)
    D = (tl * smask).sum(1) / smask.sum(1).clamp(min=1)
    floss = (wts * D).sum() / wts.sum().clamp(min=1)
    fopt.zero_grad(set_to_none=True)
    floss.backward()
    fopt.step()
    t3 = time.perf_counter()
    return dict(total=t3 - t0, rollout=t1 - t0, score=t2 - t1, update=t3 - t2, tokens=int(rlen.sum()),
                acc=float((R >= 1).float().mean()), loss=float(loss))


TAP_IDX = ()


def main():
    global TAP_IDX
    pj = json.load(open(sys.argv[1]))
    dec = Decoder(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    nl = CFG["layers"]
    # round half to even, N -> N-1 (the tap rule)
    TAP_IDX = tuple(min(int(round(p * nl)), nl - 1) for p in TAPS)
    pol = Policy(CFG, pj["vocab"])
    flow = Flow(CFG["d"], FLOW_W, FLOW_K)
    popt = torch.optim.AdamW(pol.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    fopt = torch.optim.AdamW(flow.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    prompts = [p["ids"] for p in pj["prompts"]]
    answers = [p["answer"] for p in pj["prompts"]]
    G, max_new, eos = pj["group"], pj["max_new"], pj["eos"]
    sums = {}
    for s in range(steps + 1):  # step 0: warm-up
        r = step(pol, flow, popt, fopt, prompts, answers, G, max_new, eos, dec, gen)
        print("torch step %d: total=%.3fs rollout=%.3f score=%.3f update=%.3f gen_tokens=%d" %
              (s, r["total"], r["rollout"], r["score"], r["update"], r["tokens"]), flush=True)
        if s > 0:
            for k in ("total", "rollout", "score", "update", "tokens"):
                sums[k] = sums.get(k, 0) + r[k]
    n = steps
    print("torch rl_step mean total=%.4f rollout=%.4f score=%.4f update=%.4f gen_tokens=%.0f threads=%d" %
          (sums["total"] / n, sums["rollout"] / n, sums["score"] / n, sums["update"] / n, sums["tokens"] / n,
           threads))


if __name__ == "__main__":
    main()
