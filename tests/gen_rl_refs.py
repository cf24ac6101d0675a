#!/usr/bin/python3
"""Reference tensors for tests/test_rl_math.c, computed with PyTorch (float64
from float32 inputs; loss gradients by autograd). Regenerate with
    /usr/bin/python3 tests/gen_rl_refs.py
which rewrites tests/ref/rl_*.safetensors. The formulas follow docs/rl.md;
they are written here independently of the C code, in plain torch ops."""
import os

import torch

from st_write import write_safetensors

torch.manual_seed(1234)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ref")

N, G, T = 8, 4, 12


def save(name, tensors):
    write_safetensors(os.path.join(OUT, name), tensors)


def f32(x):
    """Round to float32 (what the C side sees), then compute in float64."""
    return x.float().double()


# ---- shared inputs: right-padded sequences, response = positions [p0, p0+len) ----
prompt = torch.tensor([2, 3, 1, 2, 4, 2, 3, 1])
length = torch.tensor([7, 5, 9, 1, 6, 8, 3, 7])
mask = torch.zeros(N, T, dtype=torch.float64)
for i in range(N):
    mask[i, prompt[i]:prompt[i] + length[i]] = 1
# token_pre mode: the last response token has no partner, so no score
score_mask = mask.clone()
for i in range(N):
    score_mask[i, prompt[i] + length[i] - 1] = 0
score = f32(torch.rand(N, T) * 3)
reward = f32(torch.tensor([1, 0, 0.5, 1, 0, 0, 0, 0, 1, 1, 0.5, 0, 0.5, 1, 1, 0])[:N])
logp = f32(-torch.rand(N, T) * 2 - 0.05)
old_logp = f32(logp + torch.randn(N, T) * 0.25)
ref_logp = f32(logp + torch.randn(N, T) * 0.3)
entropy = f32(torch.rand(N, T) * 2)
adv_tok = f32(torch.randn(N, T))


# ---- flow reward ----
def flow_reward(score, valid, norm, power, thr, topk, coef):
    r = torch.zeros_like(score)
    for i in range(N):
        idx = [k for k in range(T) if valid[i, k] > 0]
        if not idx:
            continue
        s = score[i, idx]
        lo, hi = s.min(), s.max()
        if hi - lo <= 0:
            continue
        v = (s - lo) / (hi - lo)
        if norm == "minmax_bilateral":
            v = 2 * v - 1
        v = torch.sign(v) * v.abs() ** power
        key = v.abs() if norm == "minmax_bilateral" else v
        cand = [(float(-key[j]), idx[j], float(v[j])) for j in range(len(idx)) if key[j] > thr]
        cand.sort()
        if topk > 0:
            cand = cand[:topk]
        for _, k, val in cand:
            r[i, k] = -coef * val
    return r


flow_cases = [
    # name, norm, power, threshold, topk, coef, use score_mask
    ("a", "minmax", 1.0, 0.6, 3, 0.01, True),
    ("b", "minmax", 2.0, 0.3, 0, 0.01, False),
    ("c", "minmax_bilateral", 0.5, 0.5, 2, 0.05, True),
    ("d", "minmax_bilateral", 1.0, 0.6, 15, 0.01, False),
]
flow = {"score": score, "mask": mask, "score_mask": score_mask}
for name, norm, power, thr, topk, coef, use_sm in flow_cases:
    flow["r_" + name] = flow_reward(score, score_mask if use_sm else mask, norm, power, thr, topk, coef)
save("rl_flow_reward.safetensors", flow)


# ---- advantages and returns ----
def outcome(reward, est, eps, keep=None):
    out = torch.zeros(N, dtype=torch.float64)
    for g in range(0, N, G):
        ids = [j for j in range(g, g + G) if keep is None or keep[j] != 0]
        r = reward[ids]
        if est == "group_norm":
            a = (r - r.mean()) / (r.std(unbiased=True) + eps)
        elif est == "rloo":
            a = r - (r.sum() - r) / (len(ids) - 1)
        else:
            a = r - r.mean()
        out[ids] = a
    return out


def returns(adv, flow_r, kl, kl_coef, gamma):
    A = torch.zeros(N, T, dtype=torch.float64)
    for i in range(N):
        rho = flow_r[i].clone() - kl_coef * kl[i]
        last = int(prompt[i] + length[i] - 1)
        rho[last] += adv[i]
        acc = 0.0
        for k in range(last, int(prompt[i]) - 1, -1):
            acc = rho[k] + gamma * acc
            A[i, k] = acc
    return A


def whiten(A, valid, eps):
    v = A[valid > 0]
    return torch.where(valid > 0, (A - v.mean()) / (v.std(unbiased=True) + eps), torch.zeros_like(A))


kl1 = logp - ref_logp  # k1 in the reward (from the rollout's log-probs)
flow_r = flow["r_a"]
advs = {"reward": reward, "mask": mask, "flow_r": flow_r, "logp": logp, "ref_logp": ref_logp}
for est in ["group_norm", "rloo", "reinforce_baseline", "dr_grpo"]:
    a = outcome(reward, est, 1e-6)
    advs["adv_" + est] = a
    ret = returns(a, flow_r, kl1, 0.1, 0.9)
    if est == "reinforce_baseline":
        ret = whiten(ret, mask, 1e-6)
    advs["ret_" + est] = ret
# plain GRPO returns (gamma 1, no KL): A_k = A-hat + sum of future flow rewards
advs["ret_plain"] = returns(advs["adv_group_norm"], flow_r, kl1, 0.0, 1.0)
keep = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1], dtype=torch.float64)
advs["keep"] = keep
advs["adv_keep"] = outcome(reward, "group_norm", 1e-6, keep)
advs["entropy"] = entropy
advs["adv_tok"] = adv_tok
advs["shaped"] = torch.where(mask > 0, adv_tok + torch.minimum(0.4 * entropy, adv_tok.abs() / 2), adv_tok)
save("rl_adv.safetensors", advs)


# ---- PPO loss ----
def kl_est(l, est):
    if est == "k1":
        return l
    if est == "k2":
        return 0.5 * l * l
    return torch.exp(-l) - 1 + l


def pg(agg, clip_low, clip_high, dual, kl_coef, est, norm_len=0):
    lp = logp.clone().requires_grad_(True)
    ratio = torch.exp(lp - old_logp)
    u1 = -adv_tok * ratio
    u2 = -adv_tok * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    L = torch.maximum(u1, u2)
    if dual > 0:
        L = torch.where(adv_tok < 0, torch.minimum(L, -adv_tok * dual), L)
    if kl_coef != 0:
        L = L + kl_coef * kl_est(lp - ref_logp, est)
    m = mask
    if agg == "token_mean":
        loss = (L * m).sum() / m.sum()
    elif agg == "seq_mean_token_mean":
        seq = (L * m).sum(-1) / m.sum(-1)
        loss = seq.mean()
    else:
        loss = (L * m).sum() / (N * (norm_len if norm_len > 0 else T))
    loss.backward()
    clipfrac = ((u2 > u1).double() * m).sum() / m.sum()
    return loss.detach().reshape(1), lp.grad, clipfrac.detach().reshape(1)


pg_cases = [
    # name, agg, clip_low, clip_high, dual, kl_coef, kl estimator, norm_len
    ("tm", "token_mean", 0.2, 0.2, 0, 0, "k1", 0),
    ("smtm", "seq_mean_token_mean", 0.2, 0.28, 0, 0, "k1", 0),
    ("smtsn", "seq_mean_token_sum_norm", 0.2, 0.2, 0, 0, "k1", 0),
    ("smtsn_l", "seq_mean_token_sum_norm", 0.2, 0.2, 0, 0, "k1", 20),
    ("dual_k3", "seq_mean_token_mean", 0.2, 0.2, 1.5, 0.05, "k3", 0),
    ("k1", "token_mean", 0.2, 0.28, 0, 0.1, "k1", 0),
    ("k2", "token_mean", 0.2, 0.28, 0, 0.1, "k2", 0),
    ("k3", "seq_mean_token_sum_norm", 0.2, 0.28, 3.0, 0.1, "k3", 0),
]
pgs = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp, "adv": adv_tok, "mask": mask}
for name, agg, cl, ch, dual, klc, est, nl in pg_cases:
    loss, grad, cf = pg(agg, cl, ch, dual, klc, est, nl)
    pgs["loss_" + name], pgs["grad_" + name], pgs["clipfrac_" + name] = loss, grad, cf
save("rl_pg.safetensors", pgs)


# ---- online flow loss ----
token_loss = f32(torch.rand(N, T) * 2)


def flow_loss(soft, q):
    tl = token_loss.clone().requires_grad_(True)
    w = torch.where(reward >= 1, torch.ones_like(reward), torch.full_like(reward, soft))
    num, den = 0.0, 0.0
    for i in range(N):
        valid = mask[i] > 0
        u = mask[i].clone()
        if q > 0:
            thr = torch.quantile(entropy[i][valid], q)
            u = torch.where(valid & (entropy[i] >= thr), torch.ones_like(u), torch.where(valid, torch.full_like(u, soft), torch.zeros_like(u)))
        if u.sum() <= 0:
            continue
        num = num + w[i] * (u * tl[i]).sum() / u.sum()
        den = den + w[i]
    loss = num / den
    loss.backward()
    return loss.detach().reshape(1), tl.grad


fls = {"token_loss": token_loss, "reward": reward, "mask": mask, "entropy": entropy}
for name, soft, q in [("hard", 0.0, 0.0), ("soft", 0.3, 0.0), ("quant", 0.0, 0.6), ("soft_quant", 0.25, 0.35)]:
    fls["loss_" + name], fls["grad_" + name] = flow_loss(soft, q)
save("rl_flow_loss.safetensors", fls)
print("wrote", OUT)
