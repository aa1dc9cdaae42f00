#!/usr/bin/env python3
"""PyTorch-eager reference for bench/bench_rl_kernels.cpp's softmax_logprob and ratio_clip lines
(BENCHMARKS.md, "RL kernels (CPU)").

The same work at the same shapes, written as a PyTorch user writes it, float32 on the CPU:
- softmax_logprob: ls = log_softmax(logits); logp = ls.gather(target); H = -(ls.exp() * ls).sum().
  Backward: autograd of sum(g_logp * logp + g_H * H) with respect to the logits, the graph built
  once and replayed (retain_graph), so the line times the backward alone.
- ratio_clip (B=64, T=1024, eps 0.2 / 0.28, token mean over a mask of responses of different
  lengths, as ClipData): the clipped surrogate, the low/high clip fractions, k1 and k3; backward
  of the loss with respect to the new log-probs, replayed as above.
The inputs follow the C++ benchmark's recipe (normal logits of scale 3, targets (n*7919) % V;
log-ratios of scale 0.15), drawn from PyTorch's generator.

Each line is the median over --repeats rounds of the process CPU time per call (one thread:
torch.set_num_threads), printed as us per call and ns per element, beside the minimal bytes of
the fused kernel (softmax_logprob fwd 4 B per logit, bwd 8 B; ratio_clip fwd 16 B per token,
bwd 20 B), so the figures read like the C++ benchmark's.

Only for producing a comparison figure on the developer's machine: neither CI nor the tests need
PyTorch.

    python3 scripts/bench_torch_kernels.py --threads 1
"""
import argparse
import statistics
import time

import torch


def cpu_time_per_call(fn, min_seconds):
    fn()  # warm-up (allocator, dispatcher caches)
    calls, t0 = 0, time.process_time()
    while True:
        fn()
        calls += 1
        elapsed = time.process_time() - t0
        if elapsed >= min_seconds:
            return elapsed / calls


def softmax_logprob_case(N, V):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(N, V, generator=g) * 3.0).requires_grad_(True)
    targets = (torch.arange(N) * 7919) % V
    g_logp, g_H = torch.randn(N, generator=g), torch.randn(N, generator=g)

    def forward():
        ls = torch.log_softmax(logits, dim=-1)
        logp = ls.gather(-1, targets[:, None]).squeeze(-1)
        H = -(ls.exp() * ls).sum(-1)
        return logp, H

    def fwd():
        with torch.no_grad():
            forward()

    logp, H = forward()
    obj = (g_logp * logp).sum() + (g_H * H).sum()

    def bwd():
        torch.autograd.grad(obj, logits, retain_graph=True)

    return fwd, bwd, N * V, 4.0, 8.0


def ratio_clip_case(B, T, eps_low=0.2, eps_high=0.28):
    g = torch.Generator().manual_seed(4)
    old = -torch.randn(B, T, generator=g).abs() - 0.01
    logp = (old + 0.15 * torch.randn(B, T, generator=g)).requires_grad_(True)
    adv = torch.randn(B, T, generator=g)
    mask = torch.ones(B, T)
    for i in range(B):  # responses of different lengths, as ClipData
        mask[i, T - (i * 37) % (T // 2):] = 0.0

    def forward():
        log_ratio = (logp - old).clamp(-20.0, 20.0)
        ratio = log_ratio.exp()
        surr1 = ratio * adv
        surr2 = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv
        tokens = mask.sum()
        loss = -(torch.min(surr1, surr2) * mask).sum() / tokens
        with torch.no_grad():  # the statistics the fused kernel returns
            low = (((adv < 0) & (ratio < 1.0 - eps_low)) * mask).sum() / tokens
            high = (((adv > 0) & (ratio > 1.0 + eps_high)) * mask).sum() / tokens
            k1 = ((old - logp) * mask).sum() / tokens
            k3 = (((ratio - 1.0) - log_ratio) * mask).sum() / tokens
        return loss, (low, high, k1, k3)

    def fwd():
        with torch.no_grad():
            forward()

    loss, _ = forward()

    def bwd():
        torch.autograd.grad(loss, logp, retain_graph=True)

    return fwd, bwd, B * T, 16.0, 20.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per timed round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, CPU time")
    cases = [(f"softmax_logprob/N:{N}/V:{V}", softmax_logprob_case(N, V))
             for N in (64, 512) for V in (256, 32000)]
    cases.append(("ratio_clip/B:64/T:1024", ratio_clip_case(64, 1024)))
    for name, (fwd, bwd, elems, fwd_bytes, bwd_bytes) in cases:
        for direction, fn, nbytes in (("fwd", fwd, fwd_bytes), ("bwd", bwd, bwd_bytes)):
            s = statistics.median(cpu_time_per_call(fn, args.min_time) for _ in range(args.repeats))
            print(f"{name:32s} {direction}  {s * 1e6:10.1f} us  {s / elems * 1e9:7.3f} ns/el  "
                  f"{nbytes * elems / s / 1e9:6.2f} GB/s")


if __name__ == "__main__":
    main()
