#!/usr/bin/env bash
# Run HERE (the development machine: nvcc, no GPU) before a device call, so the lent GPU machine
# does not spend its minutes compiling: the build stage of scripts/gpu_checks.sh took 175 s of
# a session's 15 minutes of device time on a fresh H200 (2026-11-27).
#
# Builds every test binary, the rlft CLI and the two CUDA benchmarks for sm_90 in $BUILD
# (default /tmp/rlft-gpu-build), strips them, and packs them with ctest's files into
# .gpubin/build.tar.xz (git-ignored; 19 MB for 85 MB of stripped binaries, 2026-11-27). The
# archive holds the build directory's absolute path, and the device copies the repository to
# the same path as here, so ctest's generated files (absolute paths to the binaries, the
# sources' test data, the rlft binary the CLI tests run) are right there without a rebuild.
# Then, with the device tool:
#   run(command="PREBUILT=1 bash scripts/gpu_checks.sh", carry=[".gpu-deps", ".gpubin"])
# (scripts/gpu_deps.sh first, once: the benchmark and Box2D libraries the binaries load.)
# .gpubin/build.info records the commit and whether tracked files differed from it;
# gpu_checks.sh copies it into its summary, so a pack older than the tree is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-/tmp/rlft-gpu-build}
case "$BUILD" in /*) ;; *) echo "gpu_pack: BUILD must be an absolute path, got $BUILD" >&2; exit 2 ;; esac
targets="test_engine test_kernels test_models test_rl test_cli rlft bench_cuda_kernels bench_cuda_engine"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRLFT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$(nproc)" --target $targets
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage$BUILD"
for t in $targets; do strip -o "$stage$BUILD/$t" "$BUILD/$t"; done
cp "$BUILD"/CTestTestfile.cmake "$BUILD"/*_include.cmake "$BUILD"/*_tests.cmake "$stage$BUILD/"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")" .gpubin
grep -qx '/.gpubin/' "$exclude" 2>/dev/null || echo '/.gpubin/' >> "$exclude"
tmp=.gpubin/build.tar.xz.part
tar -C "$stage" -cf - "${BUILD#/}" | xz -T0 -6 > "$tmp"
mv "$tmp" .gpubin/build.tar.xz  # whole or not at all
{
  echo "build $BUILD"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.gpubin' && echo '' || echo ' + uncommitted changes')"
  echo "packed $(date -u '+%Y-%m-%d %H:%M UTC')"
} > .gpubin/build.info
cat .gpubin/build.info
du -h .gpubin/build.tar.xz
