#!/usr/bin/env python3
"""Writes the Gymnasium reference trajectories that tests/rl/test_envs.cpp replays.

Run once (CI and the tests never need Python; the outputs are committed):

    python3 -m venv /tmp/gymvenv
    /tmp/gymvenv/bin/pip install gymnasium box2d
    /tmp/gymvenv/bin/python scripts/make_env_fixtures.py   # writes tests/data/envs/*.txt

File format (text, one record per line, whitespace-separated, '#' starts a comment line):

    episode <label>                       starts an episode
    state <v...>                          CartPole/Pendulum: the float64 initial state given to
                                          the env (Gymnasium's env.unwrapped.state)
    draws <n> <v...>                      LunarLander: every np_random.uniform value the env drew
                                          during the episode, in order (terrain heights, the
                                          initial force, two dispersions per step, the reset's
                                          no-op step included)
    reset <obs...>                        the observation reset returned (float32 values)
    step <action...> <obs...> <reward> <terminated> <truncated>
                                          one env.step; action is the index for a discrete
                                          space, action_dim float32 values otherwise

Floats are printed with repr(), which round-trips exactly (float32 values via float()).
"""
import argparse
import os

import gymnasium as gym
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "tests", "data", "envs")


def fmt(values):
    return " ".join(repr(float(v)) for v in values)


def header(f, env_id, extra):
    f.write(f"# {env_id} reference trajectories from gymnasium {gym.__version__}, numpy {np.__version__}\n")
    f.write("# written by scripts/make_env_fixtures.py; format described there\n")
    for line in extra:
        f.write(f"# {line}\n")


def run_episode(f, env, label, state, policy, max_steps=None):
    """Sets env.unwrapped.state to `state`, then steps with policy(obs, t) until done."""
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    obs = env.unwrapped._get_obs() if hasattr(env.unwrapped, "_get_obs") else np.array(state, dtype=np.float32)
    f.write(f"episode {label}\nstate {fmt(state)}\nreset {fmt(obs)}\n")
    t = 0
    while True:
        action = policy(obs, t)
        obs, reward, terminated, truncated, _ = env.step(action)
        a = [action] if np.isscalar(action) else list(action)
        f.write(f"step {fmt(a)} {fmt(obs)} {float(reward)!r} {int(terminated)} {int(truncated)}\n")
        t += 1
        if terminated or truncated or (max_steps is not None and t >= max_steps):
            return t


def cartpole(path):
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(1234)
    with open(path, "w") as f:
        header(f, "CartPole-v1", [
            "episodes 0-5: random actions until termination; episode 6: a PD controller",
            "that balances until the TimeLimit truncates at step 500; episode 7: always push",
            "right from a state near the right edge (terminates on x > 2.4)",
        ])
        for k in range(6):
            state = rng.uniform(-0.05, 0.05, size=4)
            run_episode(f, env, f"random{k}", state, lambda o, t: int(rng.integers(0, 2)))
        state = rng.uniform(-0.05, 0.05, size=4)
        pd = lambda o, t: int(o[2] + 0.5 * o[3] + 0.01 * o[0] + 0.05 * o[1] > 0)
        n = run_episode(f, env, "pd_controller", state, pd)
        assert n == 500, n
        run_episode(f, env, "push_right", [2.3, 0.5, 0.05, 0.0], lambda o, t: 1)
    env.close()


def pendulum(path):
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(5678)
    with open(path, "w") as f:
        header(f, "Pendulum-v1", [
            "episodes 0-1: float32 torques uniform in [-3, 3] (beyond the [-2, 2] clip);",
            "episode 2: torque 2 sign(theta_dot) from theta = 3.1 (pumps energy until the",
            "pendulum goes round, hitting the speed clip of 8 and taking theta past +-pi many",
            "times); all run 200 steps to the TimeLimit",
        ])
        for k in range(2):
            state = [rng.uniform(-np.pi, np.pi), rng.uniform(-1.0, 1.0)]
            policy = lambda o, t: rng.uniform(-3.0, 3.0, size=1).astype(np.float32)
            run_episode(f, env, f"random{k}", state, policy)
        # Bang-bang energy pumping: the torque follows the angular velocity.
        pump = lambda o, t: np.array([2.0 if o[2] >= 0 else -2.0], dtype=np.float32)
        run_episode(f, env, "spin", [3.1, 0.5], pump)
    env.close()


class RecordingUniform:
    """Stands in for env.np_random and records every uniform draw the env makes."""

    def __init__(self, real):
        self.real = real
        self.draws = []

    def uniform(self, low=0.0, high=1.0, size=None):
        v = self.real.uniform(low, high, size)
        self.draws.extend(np.atleast_1d(v).tolist())
        return v

    def __getattr__(self, name):
        return getattr(self.real, name)


def lunar_lander(path):
    from gymnasium.envs.box2d.lunar_lander import heuristic

    with open(path, "w") as f:
        header(f, "LunarLander-v3 / LunarLanderContinuous-v3", [
            "heuristic-controller episodes; pybox2d is Box2D 2.3, the C++ env runs Box2D 2.4,",
            "so the test compares these loosely (see tests/rl/test_envs.cpp)",
        ])
        for env_id, seed in [("LunarLander-v3", 3), ("LunarLander-v3", 11), ("LunarLanderContinuous-v3", 5)]:
            env = gym.make(env_id)
            env.reset(seed=seed)
            rec = RecordingUniform(env.unwrapped.np_random)
            env.unwrapped.np_random = rec
            obs, _ = env.reset()  # seed=None keeps the recording generator
            lines = [f"reset {fmt(obs)}\n"]
            while True:
                action = heuristic(env, obs)
                if env.unwrapped.continuous:
                    action = np.asarray(action, dtype=np.float32)  # what the C++ test passes
                obs, reward, terminated, truncated, _ = env.step(action)
                a = [action] if np.isscalar(action) else list(np.asarray(action, dtype=np.float32))
                lines.append(f"step {fmt(a)} {fmt(obs)} {float(reward)!r} {int(terminated)} {int(truncated)}\n")
                if terminated or truncated:
                    break
            f.write(f"episode {env_id}_seed{seed}\n")
            f.write(f"draws {len(rec.draws)} {fmt(rec.draws)}\n")
            f.writelines(lines)
            env.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default=OUT_DIR)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    cartpole(os.path.join(args.out_dir, "cartpole_v1.txt"))
    pendulum(os.path.join(args.out_dir, "pendulum_v1.txt"))
    lunar_lander(os.path.join(args.out_dir, "lunar_lander_v3.txt"))
    for name in sorted(os.listdir(args.out_dir)):
        p = os.path.join(args.out_dir, name)
        print(f"{p}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
