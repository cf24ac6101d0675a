#!/usr/bin/python3
"""Reference tensors for tests/test_ce_loss.c, computed with PyTorch: the
masked cross-entropy of SFT from real log-probs (log_softmax of random logits
gathered at random targets), for both means, with gradients by autograd.
Regenerate with
    /usr/bin/python3 tests/gen_ce_ref.py
which rewrites tests/ref/ce_loss.safetensors. Written independently of the C
code from the definition in nodes/ce_loss.c / docs/models.md:
  token: -sum(mask * logp) / sum(mask)
  seq:   mean over rows with a masked token of -sum_t(mask * logp) / sum_t(mask)"""
import os

import torch

from st_write import write_safetensors

torch.manual_seed(6)
HERE = os.path.dirname(os.path.abspath(__file__))
B, T, V = 4, 7, 11

logits = torch.randn(B, T, V, dtype=torch.float64) * 2
targets = torch.randint(0, V, (B, T))
logp = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
logp = logp.float().double()  # what the C side reads
# Row b learns tokens [1 + b%2, T - b%3); row 2 has no response at all.
mask = torch.zeros(B, T, dtype=torch.float64)
for b in range(B):
    if b != 2:
        mask[b, 1 + b % 2:T - b % 3] = 1

out = {"logprobs": logp, "mask": mask}
for mean in ("token", "seq"):
    x = logp.clone().requires_grad_(True)
    if mean == "token":
        loss = -(mask * x).sum() / mask.sum()
    else:
        per_row = mask.sum(1)
        keep = per_row > 0
        loss = (-(mask * x).sum(1)[keep] / per_row[keep]).mean()
    loss.backward()
    out["loss_" + mean] = loss.detach().reshape(1)
    out["grad_" + mean] = x.grad
write_safetensors(os.path.join(HERE, "ref", "ce_loss.safetensors"), out)
print("wrote tests/ref/ce_loss.safetensors")
