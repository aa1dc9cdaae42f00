#!/usr/bin/env bash
# Run ON THE LENT GPU MACHINE (see scripts/gpu_deps.sh, which prepares .gpu-deps/ here first):
#   run(command="bash scripts/gpu_checks.sh", carry=[".gpu-deps"], timeout_s=600)
# Builds the CUDA test and benchmark binaries for sm_90 with all cores, then writes to $OUT
# (8 files, the most that come back): the GPU's description, every GPU-related test binary's
# output, compute-sanitizer memcheck over the CUDA kernel and op tests, and the two CUDA
# benchmarks as JSON. Stages can be chosen: STAGES="tests sanitize bench" (the default, all).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
STAGES=${STAGES:-"tests sanitize bench"}
deps=$PWD/.gpu-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH="$deps${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary="$OUT/summary.txt"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || echo "nvidia-smi: not found"
  nvcc --version 2>&1 | tail -1
  git log -1 --format='commit %h %s' 2>/dev/null
} > "$summary"

build=build-gpu
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRLFT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DGTest_DIR="$deps/cmake/GTest" -Dbenchmark_DIR="$deps/cmake/benchmark" > "$OUT/build.log" 2>&1 &&
  cmake --build "$build" -j "$(nproc)" --target test_engine test_kernels test_rl rlft bench_cuda_kernels \
    bench_cuda_engine >> "$OUT/build.log" 2>&1
rc=$?
echo "build: rc=$rc" >> "$summary"
[ $rc -eq 0 ] || { tail -40 "$OUT/build.log"; exit $rc; }

if [[ " $STAGES " == *" tests "* ]]; then
  for t in test_engine test_kernels; do
    "./$build/$t" > "$OUT/$t.log" 2>&1
    trc=$?
    echo "$t: rc=$trc $(grep -E '^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]' "$OUT/$t.log" | tr '\n' ' ')" >> "$summary"
  done
  # The CUDA PPO and REINFORCE runs against the CPU (the rest of test_rl runs in CI); its output joins
  # test_engine.log, since at most 8 files come back.
  "./$build/test_rl" --gtest_filter='*Cuda*' >> "$OUT/test_engine.log" 2>&1
  echo "test_rl *Cuda*: rc=$?" >> "$summary"
fi
if [[ " $STAGES " == *" sanitize "* ]]; then
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  "$cs" --tool memcheck --error-exitcode 9 "./$build/test_kernels" --gtest_filter='*Cuda*' > "$OUT/sanitizer.log" 2>&1
  echo "memcheck test_kernels *Cuda*: rc=$?" >> "$summary"
  "$cs" --tool memcheck --error-exitcode 9 "./$build/test_engine" --gtest_filter='Cuda*' >> "$OUT/sanitizer.log" 2>&1
  echo "memcheck test_engine Cuda*: rc=$?" >> "$summary"
fi
if [[ " $STAGES " == *" bench "* ]]; then
  for b in bench_cuda_kernels bench_cuda_engine; do
    "./$build/$b" --benchmark_min_time=0.2s --benchmark_out="$OUT/$b.json" --benchmark_out_format=json \
      >> "$OUT/bench.txt" 2>&1
    echo "$b: rc=$?" >> "$summary"
  done
fi
cat "$summary"
