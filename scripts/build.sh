#!/usr/bin/env bash
# Configures and builds rlft in ./build (Release; CUDA backend when nvcc is found).
# Extra arguments go to cmake's configure step, e.g. -DRLFT_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
