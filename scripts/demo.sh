#!/usr/bin/env bash
# The README's main job: builds rlft if needed, trains PPO on CartPole-v1 (the tuned preset,
# about 100k environment steps), draws its learning curve and evaluates the policy.
# Extra arguments go to `rlft train ppo` (e.g. --seed 2, or --preset cartpole for CleanRL's
# defaults over 500k steps).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/rlft ] || ./scripts/build.sh
cmake --build build --target rlft -j "$(nproc)" >/dev/null
./build/rlft train ppo --preset cartpole-fast --name quickstart-ppo-cartpole --log-every 10 "$@"
./build/rlft eval --run runs/quickstart-ppo-cartpole --episodes 100
echo "learning curve: runs/quickstart-ppo-cartpole/return.svg"
