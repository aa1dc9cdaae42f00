#!/usr/bin/env bash
# Run ON THE LENT GPU MACHINE (see scripts/gpu_deps.sh, which prepares .gpu-deps/ here first):
#   run(command="bash scripts/gpu_checks.sh", carry=[".gpu-deps"], timeout_s=600)
# Builds every test binary and the two CUDA benchmarks for sm_90 with all cores (or, with
# PREBUILT=1 and carry=[".gpu-deps", ".gpubin"], unpacks the ones scripts/gpu_pack.sh built
# here: no build on the device, whose minutes are few), then writes
# to $OUT (8 files; 8 is the most that come back):
#   summary.txt   the GPU, the commit, each stage's exit status and ctest's counts
#   build.log     configure + build
#   ctest.log     the WHOLE test suite (CPU and GPU tests) through ctest, one line per test
#   sanitizer.log compute-sanitizer memcheck over the CUDA kernel and engine-op tests
#   bench.txt     bench_cuda_kernels and bench_cuda_engine, console output
#   bench_cuda_kernels.json, bench_sweep.json, bench_cuda_engine.json  (scripts/bench_table.py
#                 makes tables)
#   (ctest.log, continued: only with CANDIDATES) the GPU tests again under each candidate ratio_clip
#                 launch, e.g. CANDIDATES="version=3 version=3,chunked=3": each word is put in
#                 RLFT_RATIO_CLIP_LAUNCH (kernels/ratio_clip.h), which fills the launch fields
#                 every caller leaves 0 (the engine op's, PPO's, GRPO's...), then
#                 `ctest -R Cuda` runs: a default-to-be checked end to end in the same call
# memcheck ignores CUDA API errors (tests provoke some on purpose, e.g. an invalid device).
# Each stage has a time limit (seconds; T_BUILD, T_TESTS, T_SANITIZE, T_BENCH), so a stage that
# hangs still leaves the others' results (T_CANDIDATES, default 90, is shared by the candidates
# and counts only with CANDIDATES). Whatever they add up to, the whole script keeps to T_TOTAL
# (default 540 s, inside the device tool's 600 s per command): a stage's limit is cut to what is
# left of it, and a stage with less than 10 s left is skipped (rc=125 in the summary). Stages can be
# chosen: STAGES="tests sanitize bench" (the default; "ncu" adds Nsight Compute profiles of
# chosen kernels, NCU_RUNS below; the candidates run after "tests", whatever STAGES says). Benchmarks are picked with Google
# Benchmark's --benchmark_filter (a leading '-' negates): KERNELS_FILTER (default '-sweep/':
# bench_cuda_kernels without the sweeps), SWEEP_FILTER (default 'sweep/ratio_clip_v3', 27 lines,
# into bench_sweep.json; empty: none), ENGINE_FILTER (default all of bench_cuda_engine).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
STAGES=${STAGES:-"tests sanitize bench"}
KERNELS_FILTER=${KERNELS_FILTER:--sweep/}
SWEEP_FILTER=${SWEEP_FILTER-sweep/ratio_clip_v3}
ENGINE_FILTER=${ENGINE_FILTER:-.}
T_BUILD=${T_BUILD:-200} T_TESTS=${T_TESTS:-120} T_SANITIZE=${T_SANITIZE:-80} T_BENCH=${T_BENCH:-180}
# Google Benchmark's --benchmark_min_time for every benchmark line (seconds of timed GPU work;
# a line's wall time is several times that: the L2 flush before every timed region, ~3 s a
# line at 0.1 on the H200 in session 15).
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.1}
# T_BENCH's shares (below), each settable on its own.
T_BENCH_KERNELS=${T_BENCH_KERNELS:-$((T_BENCH / 2))} T_BENCH_SWEEP=${T_BENCH_SWEEP:-$((T_BENCH / 4))}
T_BENCH_ENGINE=${T_BENCH_ENGINE:-$((T_BENCH / 4))}
CANDIDATES=${CANDIDATES:-} T_CANDIDATES=${T_CANDIDATES:-90}
# The "ncu" stage (only when STAGES names it; below).
# One benchmark line a word: the launches counted are those of the first line that runs.
# (Timed lines are named …/manual_time: a filter ending in '$' after the shape matches none, and
# ncu then profiles nothing; end it with '/', as below.)
NCU_RUNS=${NCU_RUNS:-"bench_cuda_kernels:^ratio_clip_v3_fwd_graph/B=512/T=4096/ bench_cuda_kernels:^ratio_clip_read_ceiling_graph/B=512/T=4096/"}
NCU_KERNELS=${NCU_KERNELS:-"ratio_clip|read_ceiling|adam"} NCU_SKIP=${NCU_SKIP:-2}
NCU_COUNT=${NCU_COUNT:-2} T_NCU=${T_NCU:-90}
T_TOTAL=${T_TOTAL:-540}
# budget N: N, or less if less is left of T_TOTAL (5 s kept for the summary); 0 when under 10 s.
budget() {
  local left=$((T_TOTAL - SECONDS - 5))
  if [ "$left" -lt 10 ]; then echo 0; elif [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}
deps=$PWD/.gpu-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH="$deps${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary="$OUT/summary.txt"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || echo "nvidia-smi: not found"
  nvcc --version 2>&1 | tail -1
  git log -1 --format='commit %h %s' 2>/dev/null
  echo "cores: $(nproc)"
} > "$summary"
stage() {  # stage NAME STATUS: one line of the summary, with the seconds since the last one
  local now=$SECONDS
  echo "$1: rc=$2 ($((now - ${last:-0})) s)" >> "$summary"
  last=$now
}

build=build-gpu
if [ "${PREBUILT:-0}" = 1 ]; then
  # The binaries scripts/gpu_pack.sh built on the development machine: unpacked at the absolute
  # path they were built in (ctest's files name it), not built here.
  if [ ! -s .gpubin/build.tar.xz ] || [ ! -s .gpubin/build.info ]; then
    echo "PREBUILT=1: no .gpubin/build.tar.xz (run scripts/gpu_pack.sh here, carry .gpubin)" | tee -a "$summary"
    exit 2
  fi
  build=$(sed -n 's/^build //p' .gpubin/build.info)
  cat .gpubin/build.info >> "$summary"
  timeout "$(budget "$T_BUILD")" tar -C / -xJf .gpubin/build.tar.xz > "$OUT/build.log" 2>&1
  rc=$?
  stage "unpack (prebuilt)" $rc
  [ $rc -eq 0 ] || { cat "$OUT/build.log"; cat "$summary"; exit $rc; }
else
timeout "$(budget "$T_BUILD")" bash -c "
  cmake -S . -B '$build' -DCMAKE_BUILD_TYPE=Release -DRLFT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DGTest_DIR='$deps/cmake/GTest' -Dbenchmark_DIR='$deps/cmake/benchmark' \
    -DCMAKE_PREFIX_PATH='$PWD/.gpu-deps/usr' &&
  cmake --build '$build' -j $(nproc) --target test_engine test_kernels test_models test_rl test_cli \
    rlft bench_cuda_kernels bench_cuda_engine" > "$OUT/build.log" 2>&1
rc=$?
stage build $rc
[ $rc -eq 0 ] || { tail -40 "$OUT/build.log"; cat "$summary"; exit $rc; }
fi

if [[ " $STAGES " == *" tests "* ]] && [ "$(budget "$T_TESTS")" -gt 0 ]; then
  # Every test, CPU and GPU: on a machine with a GPU only the two root-permission tests
  # (Fs.*, we run as root) should be skipped.
  timeout "$(budget "$T_TESTS")" ctest --test-dir "$build" -j "$(nproc)" --timeout 120 --output-on-failure \
    > "$OUT/ctest.log" 2>&1
  rc=$?
  stage "ctest (whole suite)" $rc
  grep -E 'tests passed|tests failed out of|Total Test time' "$OUT/ctest.log" >> "$summary"
  echo "skipped: $(grep -c '(Skipped)' "$OUT/ctest.log"); of them GPU tests: $(grep '(Skipped)' "$OUT/ctest.log" | grep -ci cuda)" >> "$summary"
  echo "tests named *Cuda* passed: $(grep -E 'Test +#[0-9]+: [^ ]*Cuda' "$OUT/ctest.log" | grep -c ' Passed')" >> "$summary"
fi
if [ -n "$CANDIDATES" ]; then
  # The GPU tests (every test named *Cuda*: each op's and kernel's parity, PPO's, REINFORCE's,
  # GRPO's, DPO's and SFT's runs against the CPU) under each candidate launch in turn.
  n=$(wc -w <<< "$CANDIDATES")
  for c in $CANDIDATES; do
    t=$(budget "$((T_CANDIDATES / n))")
    [ "$t" -gt 0 ] || { stage "candidate RLFT_RATIO_CLIP_LAUNCH=$c: no time left" 125; continue; }
    echo "== RLFT_RATIO_CLIP_LAUNCH=$c" >> "$OUT/ctest.log"
    from=$(wc -l < "$OUT/ctest.log")  # this candidate's lines start after it
    RLFT_RATIO_CLIP_LAUNCH="$c" timeout "$t" ctest --test-dir "$build" -R Cuda \
      -j "$(nproc)" --timeout 60 --output-on-failure >> "$OUT/ctest.log" 2>&1
    r=$?
    stage "candidate RLFT_RATIO_CLIP_LAUNCH=$c: ctest -R Cuda" $r
    # (only this candidate's counts: a run stopped by its limit prints none, and the previous
    # candidate's line must not stand in for them)
    tail -n "+$((from + 1))" "$OUT/ctest.log" | grep -E 'tests passed|tests failed out of' |
      tail -1 >> "$summary"
  done
fi
if [[ " $STAGES " == *" sanitize "* ]]; then
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/compute-sanitizer/compute-sanitizer \
    /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$cs" ]; then
    echo "compute-sanitizer: not found" > "$OUT/sanitizer.log"
    stage "memcheck: compute-sanitizer not found" 127
  else
    : > "$OUT/sanitizer.log"
    worst=0
    set -f  # the filters' '*' are not globs
    for t in "test_kernels --gtest_filter=*Cuda*" "test_engine --gtest_filter=Cuda*"; do
      set -- $t
      lim=$(budget "$((T_SANITIZE / 2))")
      [ "$lim" -gt 0 ] || { echo "memcheck $1: no time left" >> "$OUT/sanitizer.log"; worst=125; continue; }
      timeout "$lim" "$cs" --tool memcheck --report-api-errors no --error-exitcode 9 "$build/$1" "$2" \
        >> "$OUT/sanitizer.log" 2>&1
      r=$?
      [ $r -gt $worst ] && worst=$r
    done
    set +f
    stage "memcheck (test_kernels *Cuda*, test_engine Cuda*)" $worst
  fi
  grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED)' "$OUT/sanitizer.log" | tr '\n' ' ' >> "$summary"
  echo >> "$summary"
fi
if [[ " $STAGES " == *" bench "* ]]; then
  # Three invocations, each with its own JSON and time share (a benchmark killed by its limit
  # leaves a truncated JSON, so the groups are kept apart): the kernels' main lines (half of
  # T_BENCH: T_BENCH_KERNELS), a launch-shape sweep (a quarter: T_BENCH_SWEEP; SWEEP_FILTER empty
  # skips it), the engine level (a quarter: T_BENCH_ENGINE).
  bench() {  # bench NAME BINARY FILTER SECONDS
    local t
    t=$(budget "$4")
    [ "$t" -gt 0 ] || { stage "$1: no time left" 125; return; }
    echo "== $1 (filter '$3')" >> "$OUT/bench.txt"
    timeout "$t" "$build/$2" --benchmark_min_time="$BENCH_MIN_TIME" --benchmark_filter="$3" \
      --benchmark_out="$OUT/$1.json" --benchmark_out_format=json >> "$OUT/bench.txt" 2>&1
    stage "$1" $?
  }
  bench bench_cuda_kernels bench_cuda_kernels "$KERNELS_FILTER" "$T_BENCH_KERNELS"
  [ -n "$SWEEP_FILTER" ] && bench bench_sweep bench_cuda_kernels "$SWEEP_FILTER" "$T_BENCH_SWEEP"
  bench bench_cuda_engine bench_cuda_engine "$ENGINE_FILTER" "$T_BENCH_ENGINE"
  # ratio_clip's target in the summary (and so in the call's output): the main lines at
  # 512×4096 that ran (forwards, read ceilings, dirty_l2/), best first (the target: ≥ 70%),
  # then the timeline lines that ran (where a call's time goes), with their column names.
  if command -v python3 > /dev/null && [ -s "$OUT/bench_cuda_kernels.json" ]; then
    { echo "ratio_clip at 512x4096, best first (top 12; columns: time, GB/s, %peak, ...):"
      python3 scripts/bench_table.py --match '^(dirty_l2/)?ratio_clip.*/B=512/T=4096(/manual_time)?$' \
        --sort %peak "$OUT/bench_cuda_kernels.json" 2>&1 | grep '^| ' | grep -v '^| benchmark' | head -12
      python3 scripts/bench_table.py --match '^timeline' "$OUT/bench_cuda_kernels.json" 2>&1 |
        grep '^| ' | grep -v '^|---' | head -20
    } >> "$summary"
  fi
fi
if [[ " $STAGES " == *" ncu "* ]]; then
  # Nsight Compute over a few kernels, appended to bench.txt (8 files is all that come back):
  # each word of NCU_RUNS is BINARY:FILTER, a benchmark binary and the Google Benchmark filter of
  # the line to run under ncu; in each, the kernels whose names match NCU_KERNELS are
  # profiled, NCU_COUNT launches after the first NCU_SKIP (the warm-up), at the GPU's own
  # clocks, with the sections that say where a kernel's time goes: speed of light, occupancy,
  # launch statistics, memory workload and the warps' stall reasons.
  ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -z "$ncu" ]; then
    stage "ncu: not found" 127
  else
    worst=0
    set -f  # the filters' '*' are not globs
    for r in $NCU_RUNS; do
      bin=${r%%:*} filter=${r#*:}
      t=$(budget "$((T_NCU / $(wc -w <<< "$NCU_RUNS")))")
      [ "$t" -gt 0 ] || { echo "ncu $r: no time left" >> "$OUT/bench.txt"; worst=125; continue; }
      echo "== ncu $bin, benchmarks '$filter', kernels '$NCU_KERNELS'" >> "$OUT/bench.txt"
      timeout "$t" "$ncu" --clock-control none --kernel-name "regex:$NCU_KERNELS" \
        --launch-skip "$NCU_SKIP" --launch-count "$NCU_COUNT" --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
        --section WarpStateStats "$build/$bin" --benchmark_filter="$filter" \
        --benchmark_min_time=0.01 >> "$OUT/bench.txt" 2>&1
      rc=$?
      [ $rc -gt $worst ] && worst=$rc
    done
    set +f
    stage "ncu ($(wc -w <<< "$NCU_RUNS") runs)" $worst
  fi
fi
cat "$summary"
