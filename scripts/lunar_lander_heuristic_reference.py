#!/usr/bin/env python3
"""Mean return of Gymnasium's LunarLander heuristic controller over seeds 0..N-1.

This is the oracle that tests/rl/test_envs.cpp (LunarLander.HeuristicOracle*) compares the C++
LunarLander against; the figures it prints are written into that test by hand. Run once:

    python3 -m venv /tmp/gymvenv
    /tmp/gymvenv/bin/pip install gymnasium box2d
    /tmp/gymvenv/bin/python scripts/lunar_lander_heuristic_reference.py --episodes 100

Each episode: env.reset(seed=k), then heuristic(env, s) until terminated or truncated
(TimeLimit 1000), as gymnasium.envs.box2d.lunar_lander.demo_heuristic_lander does.
"""
import argparse
import statistics

import gymnasium as gym
from gymnasium.envs.box2d.lunar_lander import heuristic


def run(env_id: str, episodes: int, first_seed: int):
    env = gym.make(env_id)
    returns, lengths = [], []
    for k in range(episodes):
        s, _ = env.reset(seed=first_seed + k)
        total, steps = 0.0, 0
        while True:
            s, r, terminated, truncated, _ = env.step(heuristic(env, s))
            total += float(r)
            steps += 1
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(steps)
    env.close()
    return returns, lengths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    print(f"gymnasium {gym.__version__}")
    for env_id in ["LunarLander-v3", "LunarLanderContinuous-v3"]:
        returns, lengths = run(env_id, args.episodes, args.first_seed)
        mean = statistics.fmean(returns)
        std = statistics.stdev(returns)
        crashed = sum(1 for r in returns if r < 0)
        print(
            f"{env_id:26s} episodes {len(returns)}  mean return {mean:8.3f}  std {std:7.3f}  "
            f"sem {std / len(returns) ** 0.5:6.3f}  min {min(returns):8.3f}  "
            f"max {max(returns):8.3f}  negative {crashed}  mean length {statistics.fmean(lengths):7.2f}"
        )


if __name__ == "__main__":
    main()
