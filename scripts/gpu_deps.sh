#!/usr/bin/env bash
# Run HERE (a development machine with Debian's GoogleTest, Google Benchmark and Box2D): copies
# their headers, libraries and CMake package files into .gpu-deps/ (git-ignored) with the
# layout CMake expects, so the lent GPU machine, which has nvcc and CMake but none of them and
# no network, can build every test and benchmark binary itself (Box2D: the LunarLander tests). Then, with the
# device tool: run(command="bash scripts/gpu_checks.sh", carry=[".gpu-deps"]).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=x86_64-linux-gnu
dst=.gpu-deps/usr
rm -rf .gpu-deps
mkdir -p "$dst/include" "$dst/lib/$arch/cmake"
for pkg in libgtest-dev libgmock-dev libbenchmark-dev libbox2d-dev; do
  dpkg -s "$pkg" > /dev/null 2>&1 || { echo "gpu_deps: $pkg is not installed (run scripts/deps.sh)" >&2; exit 1; }
done
cp -r /usr/include/gtest /usr/include/gmock /usr/include/benchmark /usr/include/box2d "$dst/include/"
cp -r "/usr/lib/$arch/cmake/GTest" "/usr/lib/$arch/cmake/benchmark" "$dst/lib/$arch/cmake/"
cp -P "/usr/lib/$arch"/lib{gtest,gtest_main,gmock,gmock_main,benchmark_main}.a "$dst/lib/$arch/"
cp -P "/usr/lib/$arch"/libbenchmark.so* "/usr/lib/$arch"/libbox2d.so* "$dst/lib/$arch/"
exclude=$(git rev-parse --git-path info/exclude)  # .git is a file in a worktree
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >> "$exclude"
du -sh .gpu-deps
