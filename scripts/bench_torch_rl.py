#!/usr/bin/env python3
"""PyTorch-eager reference for bench/bench_rl_train.cpp (BENCHMARKS.md, "Classic-control training").

The same two CartPole-v1 training loops as rlft's, written in PyTorch on Gymnasium's CartPole,
to give the "CleanRL-style PyTorch" figure of env steps per second measured on this machine
rather than quoted:

  ppo        CleanRL's ppo.py defaults, as rl/ppo.h: 4 synchronous envs x 128 steps, GAE
             (gamma 0.99, lambda 0.95), 4 epochs x 4 minibatches, clipped ratio and value loss
             (0.2), entropy 0.01, value 0.5, grad-norm clip 0.5, Adam 2.5e-4 (eps 1e-5)
             annealed linearly, separate 4-64-64 tanh actor and critic with orthogonal init.
             One iteration = 20 updates = 10,240 env steps (BM_PPOCartPole).
  reinforce  rl/reinforce.h's defaults: one episode per update, reward-to-go (gamma 0.99),
             running-mean baseline (momentum 0.99), standardised advantages, Adam 1e-3,
             4-64-64 tanh policy. One iteration = 300 episodes (BM_ReinforceCartPole).

Float32, eager (no torch.compile), torch.set_num_threads(n). Each iteration reports env steps
per second over wall time and over this process's CPU time (the latter is the fair figure on a
machine shared with other jobs). Only for producing a comparison figure on the developer's
machine: neither CI nor the tests need PyTorch or Gymnasium.

    python3 scripts/bench_torch_rl.py --algo ppo --threads 1 --iterations 3
"""
import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn


def mlp(sizes, out_gain):
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, out_gain if last else 2 ** 0.5)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def run_ppo(seed, total_steps=4 * 128 * 20):
    num_envs, num_steps, epochs, minibatches = 4, 128, 4, 4
    gamma, lam, clip, ent_coef, vf_coef, max_norm, lr = 0.99, 0.95, 0.2, 0.01, 0.5, 0.5, 2.5e-4
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(num_envs)])
    obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
    actor, critic = mlp([obs_dim, 64, 64, n_actions], 0.01), mlp([obs_dim, 64, 64, 1], 1.0)
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=lr, eps=1e-5)
    batch = num_envs * num_steps
    mb = batch // minibatches
    updates = total_steps // batch

    obs_buf = torch.zeros(num_steps, num_envs, obs_dim)
    act_buf = torch.zeros(num_steps, num_envs, dtype=torch.long)
    logp_buf = torch.zeros(num_steps, num_envs)
    rew_buf = torch.zeros(num_steps, num_envs)
    done_buf = torch.zeros(num_steps, num_envs)
    val_buf = torch.zeros(num_steps, num_envs)
    next_obs, _ = envs.reset(seed=seed)
    next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
    next_done = torch.zeros(num_envs)
    episode_returns, running = [], np.zeros(num_envs)
    for update in range(updates):
        opt.param_groups[0]["lr"] = lr * (1.0 - update / updates)
        for t in range(num_steps):
            obs_buf[t], done_buf[t] = next_obs, next_done
            with torch.no_grad():
                dist = torch.distributions.Categorical(logits=actor(next_obs))
                action = dist.sample()
                logp_buf[t], val_buf[t] = dist.log_prob(action), critic(next_obs).squeeze(-1)
            act_buf[t] = action
            o, r, term, trunc, _ = envs.step(action.numpy())
            running += r
            finished = np.logical_or(term, trunc)
            for i in np.nonzero(finished)[0]:
                episode_returns.append(running[i])
                running[i] = 0.0
            rew_buf[t] = torch.as_tensor(r, dtype=torch.float32)
            next_obs = torch.as_tensor(o, dtype=torch.float32)
            next_done = torch.as_tensor(finished, dtype=torch.float32)
        with torch.no_grad():  # GAE from the back, bootstrapping from the last observation
            next_value = critic(next_obs).squeeze(-1)
            adv = torch.zeros(num_steps, num_envs)
            last = torch.zeros(num_envs)
            for t in reversed(range(num_steps)):
                nonterminal = 1.0 - (next_done if t == num_steps - 1 else done_buf[t + 1])
                v_next = next_value if t == num_steps - 1 else val_buf[t + 1]
                delta = rew_buf[t] + gamma * v_next * nonterminal - val_buf[t]
                last = delta + gamma * lam * nonterminal * last
                adv[t] = last
            ret = adv + val_buf
        b_obs, b_act = obs_buf.reshape(batch, obs_dim), act_buf.reshape(batch)
        b_logp, b_adv = logp_buf.reshape(batch), adv.reshape(batch)
        b_ret, b_val = ret.reshape(batch), val_buf.reshape(batch)
        for _ in range(epochs):
            perm = torch.randperm(batch)
            for start in range(0, batch, mb):
                idx = perm[start:start + mb]
                dist = torch.distributions.Categorical(logits=actor(b_obs[idx]))
                ratio = (dist.log_prob(b_act[idx]) - b_logp[idx]).exp()
                a = b_adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip)).mean()
                v = critic(b_obs[idx]).squeeze(-1)
                v_clipped = b_val[idx] + (v - b_val[idx]).clamp(-clip, clip)
                v_loss = 0.5 * torch.max((v - b_ret[idx]) ** 2, (v_clipped - b_ret[idx]) ** 2).mean()
                loss = pg_loss - ent_coef * dist.entropy().mean() + vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, max_norm)
                opt.step()
    envs.close()
    return updates * batch, episode_returns


def run_reinforce(seed, episodes=300):
    gamma, momentum, lr = 0.99, 0.99, 1e-3
    env = gym.make("CartPole-v1")
    policy = mlp([env.observation_space.shape[0], 64, 64, env.action_space.n], 0.01)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    baseline, steps, episode_returns = 0.0, 0, []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        log_probs, rewards, done = [], [], False
        while not done:
            dist = torch.distributions.Categorical(logits=policy(torch.as_tensor(obs, dtype=torch.float32)))
            action = dist.sample()
            log_probs.append(dist.log_prob(action))
            obs, r, term, trunc, _ = env.step(int(action))
            rewards.append(r)
            done = term or trunc
        steps += len(rewards)
        obs, _ = env.reset()
        g, returns = 0.0, []
        for r in reversed(rewards):  # reward-to-go
            g = r + gamma * g
            returns.append(g)
        returns = torch.tensor(returns[::-1], dtype=torch.float32)
        adv = returns - baseline
        if len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        loss = -(adv * torch.stack(log_probs)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        baseline = momentum * baseline + (1 - momentum) * float(returns[0])
        episode_returns.append(sum(rewards))
    env.close()
    return steps, episode_returns


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--algo", choices=["ppo", "reinforce"], default="ppo")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--length", type=int, default=0,
                   help="env steps (ppo) or episodes (reinforce) per iteration; 0: the benchmark's")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = run_ppo if args.algo == "ppo" else run_reinforce
    wall_rates, cpu_rates = [], []
    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, {args.algo}, "
          f"{args.threads} thread(s)")
    for i in range(args.iterations):
        w0, c0 = time.perf_counter(), time.process_time()
        steps, returns = run(args.seed + i, *([args.length] if args.length else []))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        wall_rates.append(steps / wall)
        cpu_rates.append(steps / cpu)
        last = returns[-20:]
        print(f"  iteration {i}: {steps} env steps in {wall:.2f} s wall, {cpu:.2f} s CPU: "
              f"{steps / wall:,.0f} steps/s wall, {steps / cpu:,.0f} steps/s CPU "
              f"(last-20 return {sum(last) / max(1, len(last)):.1f})")
    print(f"median: {statistics.median(wall_rates):,.0f} env steps/s wall, "
          f"{statistics.median(cpu_rates):,.0f} env steps/s CPU")


if __name__ == "__main__":
    main()
