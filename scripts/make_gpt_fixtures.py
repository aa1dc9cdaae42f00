#!/usr/bin/env python3
"""Writes tests/data/gpt/torch_reference.safetensors: golden gradients and AdamW steps of a tiny
float64 GPT, computed by PyTorch's autograd and torch.optim.AdamW, for tests/models/test_gpt.cpp
(GPT.MatchesPyTorchGradientsAndAdamWSteps).

The model is models/gpt.h's as docs/checkpoints.md describes it, written here independently in
PyTorch: pre-LayerNorm GPT-2 (eps 1e-5), fused q/k/v projection, tanh GELU, learned positions,
head tied to the token embedding, Linear weights [out, in]. Left padding as rlft does it:
position ids count real tokens, padding keys are masked (a padding query also sees itself, so
its row stays finite; it is not in the loss).

Problem (the golden-logits test's model and batch): vocab 7, context 8, 2 layers, 2 heads,
width 8; weights w_k[i] = 0.5·sin(0.37·i + 1.3·k) for the k-th parameter in rlft's
named_parameters() order; tokens [[6,6,1,2,3],[0,4,5,1,2]], attention mask
[[0,0,1,1,1],[1,1,1,1,1]]. Loss: mean next-token cross-entropy over the positions t whose token
and next token are both real (6 positions). Then three steps of: loss, backward,
clip_grad_norm_(0.4: every step is clipped), AdamW (lr 1e-2, betas 0.9/0.99, eps 1e-8, weight decay 0.1 on the 2-d
tensors, 0 on the others: rlft's GroupedAdamW split).

Tensors written (all F64): param.<name> (the initial weights), grad.<name> (the first
backward's gradients), step3.<name> (the weights after three steps), losses [4] (before each
step and after the last), grad_norms [3] (the norms clip_grad_norm_ returned, before clipping).

Needs torch (any recent version; the committed file came from PyTorch 2.15.0):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python scripts/make_gpt_fixtures.py
"""
import json
import math
import os
import struct

import torch

V, P, N_LAYER, N_HEAD, C = 7, 8, 2, 2, 8
TOKENS = [[6, 6, 1, 2, 3], [0, 4, 5, 1, 2]]
MASK = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
LR, BETAS, EPS, WEIGHT_DECAY, MAX_NORM, STEPS = 1e-2, (0.9, 0.99), 1e-8, 0.1, 0.4, 3
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "gpt", "torch_reference.safetensors")


def parameter_shapes():
    """rlft's named_parameters() order (docs/checkpoints.md's table)."""
    shapes = [("wte.weight", [V, C]), ("wpe.weight", [P, C])]
    for i in range(N_LAYER):
        h = f"h.{i}."
        shapes += [(h + "ln_1.weight", [C]), (h + "ln_1.bias", [C]),
                   (h + "attn.c_attn.weight", [3 * C, C]), (h + "attn.c_attn.bias", [3 * C]),
                   (h + "attn.c_proj.weight", [C, C]), (h + "attn.c_proj.bias", [C]),
                   (h + "ln_2.weight", [C]), (h + "ln_2.bias", [C]),
                   (h + "mlp.c_fc.weight", [4 * C, C]), (h + "mlp.c_fc.bias", [4 * C]),
                   (h + "mlp.c_proj.weight", [C, 4 * C]), (h + "mlp.c_proj.bias", [C])]
    return shapes + [("ln_f.weight", [C]), ("ln_f.bias", [C])]


def initial_weights():
    weights = {}
    for k, (name, shape) in enumerate(parameter_shapes()):
        n = math.prod(shape)
        values = [0.5 * math.sin(0.37 * i + 1.3 * k) for i in range(n)]
        weights[name] = torch.tensor(values, dtype=torch.float64).reshape(shape)
    return weights


def logits_of(W, tokens, mask):
    B, T = tokens.shape
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    x = W["wte.weight"][tokens] + W["wpe.weight"][positions]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None] & mask.bool()[:, None, :] | torch.eye(T, dtype=torch.bool)[None]
    hd = C // N_HEAD
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), W[p + ".weight"], W[p + ".bias"], 1e-5)
    lin = lambda x, p: x @ W[p + ".weight"].t() + W[p + ".bias"]
    for i in range(N_LAYER):
        h = f"h.{i}."
        q, k, v = lin(ln(x, h + "ln_1"), h + "attn.c_attn").split(C, dim=-1)
        q, k, v = (t.view(B, T, N_HEAD, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        att = att.masked_fill(~allowed[:, None], float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(y, h + "attn.c_proj")
        m = torch.nn.functional.gelu(lin(ln(x, h + "ln_2"), h + "mlp.c_fc"), approximate="tanh")
        x = x + lin(m, h + "mlp.c_proj")
    return ln(x, "ln_f") @ W["wte.weight"].t()


def loss_of(W):
    tokens, mask = torch.tensor(TOKENS), torch.tensor(MASK)
    logits = logits_of(W, tokens, mask)[:, :-1].reshape(-1, V)
    targets = tokens[:, 1:].clone()
    targets[(mask[:, :-1] * mask[:, 1:]) == 0] = -100
    return torch.nn.functional.cross_entropy(logits, targets.reshape(-1), ignore_index=-100)


def save(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


def main():
    W = {n: t.clone().requires_grad_(True) for n, t in initial_weights().items()}
    out = {"param." + n: t.detach().clone() for n, t in W.items()}
    decay = [t for t in W.values() if t.dim() >= 2]
    no_decay = [t for t in W.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS)
    losses, norms = [], []
    for step in range(STEPS):
        opt.zero_grad()
        loss = loss_of(W)
        loss.backward()
        if step == 0:
            out.update({"grad." + n: t.grad.detach().clone() for n, t in W.items()})
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(W.values()), MAX_NORM)))
        losses.append(float(loss.detach()))
        opt.step()
    with torch.no_grad():
        losses.append(float(loss_of(W)))
    out.update({"step3." + n: t.detach().clone() for n, t in W.items()})
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    out["grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    save(OUT, out, {"generator": "scripts/make_gpt_fixtures.py", "torch": torch.__version__})
    print(f"{os.path.normpath(OUT)}: {len(out)} tensors; losses {losses}; grad norms {norms}")


if __name__ == "__main__":
    main()
