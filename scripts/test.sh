#!/usr/bin/env bash
# The test command of the README: builds everything, then runs every CTest test.
# GPU tests skip with their reason when no CUDA device answers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh "$@"
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900
