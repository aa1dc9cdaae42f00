#!/usr/bin/env bash
# The README's main job: builds rlft if needed, then runs it on built-in data.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/rlft ] || ./scripts/build.sh
cmake --build build --target rlft -j "$(nproc)" >/dev/null
./build/rlft demo "$@"
