#!/usr/bin/env python3
"""PyTorch-eager reference for bench/bench_lm.cpp's BM_TrainStep (BENCHMARKS.md, "Toy language models").

The same GPT-2-style decoder as models/gpt.h (pre-LayerNorm blocks, fused QKV, 4x tanh-GELU MLP,
learned positions, head tied to the token embedding, biases everywhere, no dropout) and the same
step: forward on random tokens (vocab 256), cross-entropy, backward, clip_grad_norm(1.0), AdamW
(lr 3e-4, betas 0.9/0.99, eps 1e-8, weight decay 0.1). Float32, eager mode (no torch.compile).
Attention is either written out (masked softmax, as the engine does) or PyTorch's fused
scaled_dot_product_attention; the faster one is the fair baseline.

Only for producing a comparison figure on the developer's machine: neither CI nor the tests need
PyTorch.

    python3 scripts/bench_torch_gpt.py --threads 1
    python3 scripts/bench_torch_gpt.py --threads 1 --models '' --generate 3   # generation only

Generation (BM_Generate): 8 random prompts of 16 tokens, 128 new tokens each by temperature-1
sampling, micro with a 256-token context, with a preallocated KV cache (checked against a full
recompute first) or recomputing the whole sequence each step; log-probs of the sampled tokens
returned, no EOS.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {  # name: (n_layer, n_embd, n_head, context, batch) as in bench_lm.cpp
    "micro": (4, 128, 4, 64, 32),
    "mini": (6, 256, 8, 128, 16),
}


class Block(nn.Module):
    def __init__(self, d, h, sdpa):
        super().__init__()
        self.h, self.sdpa = h, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def attention(self, x, cache=None, pos=0):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        if cache is not None:  # preallocated [B, NH, ctx, C/NH] buffers: write this step's k, v
            cache[0][:, :, pos:pos + T], cache[1][:, :, pos:pos + T] = k, v
            k, v = cache[0][:, :, :pos + T], cache[1][:, :, :pos + T]
            # A prompt (pos 0, T > 1) is causal; one new token attends to everything before it.
            y = F.scaled_dot_product_attention(q, k, v, is_causal=pos == 0 and T > 1)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, cache=None, pos=0):
        x = x + self.attention(self.ln1(x), cache, pos)
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, d, h, ctx, vocab, sdpa):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, h, sdpa) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, caches=None, pos=0):
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + idx.size(1)))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i], pos)
        return self.ln_f(x) @ self.wte.weight.t()


@torch.inference_mode()
def generate(model, prompts, new_tokens, use_cache):
    """bench_lm.cpp's BM_Generate: temperature-1 sampling of new_tokens per row, returning the
    tokens and each sampled token's log-prob (as rlft's generate does), no EOS."""
    B, Tp = prompts.shape
    tokens, log_probs = prompts, []
    caches, pos = None, 0
    if use_cache:
        blk = model.blocks[0]
        C = blk.qkv.in_features
        shape = (B, blk.h, Tp + new_tokens, C // blk.h)
        caches = [(torch.empty(shape), torch.empty(shape)) for _ in model.blocks]
    step_input = prompts
    for _ in range(new_tokens):
        logits = model(step_input, caches, pos)[:, -1] if use_cache else model(tokens)[:, -1]
        logp = torch.log_softmax(logits, dim=-1)
        nxt = torch.multinomial(logp.exp(), 1)
        log_probs.append(logp.gather(1, nxt))
        if use_cache:
            pos += step_input.size(1)
            step_input = nxt
        tokens = torch.cat([tokens, nxt], dim=1)
    return tokens, torch.cat(log_probs, dim=1)


def bench_generate(use_cache, reps):
    layers, d, h, _, _ = CONFIGS["micro"]
    torch.manual_seed(0)
    model = GPT(layers, d, h, 256, 256, sdpa=True).eval()
    B, Tp, new = 8, 16, 128
    prompts = torch.randint(0, 256, (B, Tp))
    if use_cache:  # the cached path must sample what a full recompute samples
        torch.manual_seed(1)
        a = generate(model, prompts, 8, True)
        torch.manual_seed(1)
        b = generate(model, prompts, 8, False)
        assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-4), "cache mismatch"
    times, cpu = [], []
    for i in range(reps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        torch.manual_seed(1)
        generate(model, prompts, new, use_cache)
        if i >= 1:  # the first is a warm-up
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    print(f"generate micro {'kv-cache' if use_cache else 'no-cache'} threads={torch.get_num_threads()} "
          f"{med * 1e3:8.1f} ms (cpu {statistics.median(cpu) * 1e3:8.1f} ms)  "
          f"tokens/s={B * new / med:9.0f}", flush=True)


def bench(name, sdpa, steps, warmup):
    layers, d, h, T, B = CONFIGS[name]
    torch.manual_seed(0)
    model = GPT(layers, d, h, T, 256, sdpa)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    data = torch.randint(0, 256, (B, T + 1))
    x, y = data[:, :-1].contiguous(), data[:, 1:].reshape(-1)
    times, cpu = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = F.cross_entropy(model(x).reshape(B * T, -1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name:6s} attention={'sdpa  ' if sdpa else 'manual'} threads={torch.get_num_threads()} "
          f"params={params} step={med * 1e3:8.1f} ms (cpu {statistics.median(cpu) * 1e3:8.1f} ms)  "
          f"tokens/s={B * T / med:9.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="micro,mini")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--generate", type=int, default=0, metavar="REPS",
                    help="also time generation (BM_Generate), median of REPS runs each way")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, eager")
    for name in filter(None, a.models.split(",")):
        for sdpa in (False, True):
            bench(name, sdpa, a.steps, a.warmup)
    if a.generate:
        bench_generate(True, a.generate)
        bench_generate(False, a.generate)


if __name__ == "__main__":
    main()
