#!/usr/bin/env python3
"""Google Benchmark JSON (--benchmark_out=F --benchmark_out_format=json) as Markdown tables.

For the figures of BENCHMARKS.md: one table per file, a row per benchmark (aggregates only
when the run has repetitions), the time per iteration in the unit the benchmark chose, then
every user counter (GB/s, %peak, speedup, vs_cublas, ...) in the order they first appear;
above each table the run's context (host, CPU count, date).

    python3 scripts/bench_table.py gpu-out/bench_cuda_kernels.json gpu-out/bench_cuda_engine.json

--match REGEX keeps the rows whose name it finds; --sort COUNTER orders them by that counter
(highest first; "time": fastest first). E.g. every ratio_clip variant at the target's shape,
best first:

    python3 scripts/bench_table.py --match 'ratio_clip.*/B=512/T=4096/' --sort %peak \
        gpu-out/bench_cuda_kernels.json gpu-out/bench_sweep.json
"""
import argparse
import json
import re
import sys

# Keys of a benchmark entry that are not user counters.
STANDARD = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "error_occurred", "error_message", "label",
}


def fmt(v):
    if isinstance(v, float):
        a = abs(v)
        if a == 0 or 0.01 <= a < 1e6:
            return f"{v:.3g}" if a < 10 else f"{v:,.1f}" if a < 1000 else f"{v:,.0f}"
        return f"{v:.3g}"
    return str(v)


def table(path, match=None, sort=None):
    with open(path) as f:
        doc = json.load(f)
    rows = doc.get("benchmarks", [])
    if any(r.get("run_type") == "aggregate" for r in rows):
        rows = [r for r in rows if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median"]
    if match:
        rows = [r for r in rows if re.search(match, r["name"])]
    if sort:
        ok = [r for r in rows if not r.get("error_occurred") and (sort == "time" or sort in r)]
        rest = [r for r in rows if r not in ok]
        if sort == "time":
            ok.sort(key=lambda r: float(r["real_time"]))
        else:
            ok.sort(key=lambda r: -float(r[sort]))
        rows = ok + rest
    counters = []
    for r in rows:
        for k in r:
            if k not in STANDARD and k not in counters:
                counters.append(k)
    ctx = doc.get("context", {})
    out = [f"`{path}`: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs, {ctx.get('date', '?')}", ""]
    out.append("| benchmark | time | " + " | ".join(counters) + " |")
    out.append("|---|---|" + "---|" * len(counters))
    for r in rows:
        if r.get("error_occurred"):
            out.append(f"| {r['name']} | error: {r.get('error_message', '')} |" + " |" * len(counters))
            continue
        t = f"{fmt(float(r['real_time']))} {r.get('time_unit', 'ns')}"
        cells = [fmt(r[k]) if k in r else "" for k in counters]
        out.append(f"| {r['name']} | {t} | " + " | ".join(cells) + " |")
    if not rows:
        out.append("| (no benchmarks ran) | |" + " |" * len(counters))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", help="Google Benchmark JSON output files")
    ap.add_argument("--match", help="keep only the benchmarks whose name this regex finds")
    ap.add_argument("--sort", help="order by this counter, highest first ('time': fastest first)")
    args = ap.parse_args()
    for i, p in enumerate(args.json):
        try:
            print(("\n" if i else "") + table(p, args.match, args.sort))
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"bench_table: {p}: {e}")


if __name__ == "__main__":
    main()
