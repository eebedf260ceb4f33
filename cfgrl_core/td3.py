"""TD3 (Fujimoto, van Hoof, Meger, 2018), compact and top-to-bottom in the style of CleanRL's td3_continuous_action.

Used only to *make* offline data: a TD3 run on a DeepMind Control task leaves a series of actor snapshots, from
near-random to competent, that the collector (:mod:`cfgrl_core.collect`) rolls out with noise.

Targets:  y = r + gamma * min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1)),  eps ~ N(0, sigma^2)
Critic:   min sum_i (Q_i(s, a) - y)^2.   Actor (every d steps):  max Q_1(s, pi(s)).   Polyak tau on targets.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import atomic_write_text, load_module, save_module
from .envs import flat_observation, make_env
from .networks import mlp
from .provenance import provenance
from .train import make_adam


@dataclass
class TD3Config:
    domain: str = "walker"
    task: str = "run"
    total_steps: int = 300_000
    learning_starts: int = 5_000
    batch_size: int = 256
    hidden: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    exploration_noise: float = 0.2
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2
    snapshot_every: int = 25_000
    seed: int = 0


def relu_mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    """Two ReLU hidden layers, as in the TD3 paper."""
    return mlp(inp, (hidden, hidden), out, activation="relu")


class Actor(nn.Module):
    """Deterministic policy a = tanh(MLP(s)) in [-1, 1]^act_dim."""

    KIND = "td3_actor"

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, hidden
        self.net = relu_mlp(obs_dim, act_dim, hidden)

    def spec(self) -> dict:
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": self.hidden}

    @classmethod
    def from_spec(cls, spec: dict, device=None) -> "Actor":
        return cls(spec["obs_dim"], spec["act_dim"], spec["hidden"]).to(device or "cpu")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


def save_actor(actor: Actor, path, metadata: dict) -> Path:
    """A snapshot in the project's checkpoint format (:func:`cfgrl_core.checkpoint.save_module`)."""
    return save_module(actor, path, metadata)


def load_actor(path) -> tuple[Actor, dict]:
    """A TD3 actor snapshot on the CPU, in eval mode, and its metadata (weights_only: nothing is unpickled)."""
    actor = load_module(path, "td3_actor", "cpu")
    return actor, actor.metadata


def evaluate_actor(actor: Actor, domain: str, task: str, episodes: int = 3, seed: int = 10_000) -> float:
    """Mean return of the deterministic actor over a few episodes."""
    returns = []
    for ep in range(episodes):
        env = make_env(domain, task, seed + ep)
        ts, total = env.reset(), 0.0
        while not ts.last():
            with torch.no_grad():
                a = actor(torch.from_numpy(flat_observation(ts.observation))[None])[0].numpy()
            ts = env.step(a)
            total += ts.reward
        returns.append(total)
    return float(np.mean(returns))


def train_td3(config: TD3Config, out_dir, progress: bool = True) -> list[dict]:
    """Run TD3 and write an actor snapshot every ``snapshot_every`` env steps (and at step 0) to ``out_dir``.

    Returns the snapshot log: [{"step", "file", "eval_return", "train_return_recent"}...], also written to
    ``out_dir/snapshots.json`` with the config.
    """
    cfg = config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.domain, cfg.task, cfg.seed)
    obs_dim = flat_observation(env.reset().observation).shape[0]
    act_dim = env.action_spec().shape[0]

    actor = Actor(obs_dim, act_dim, cfg.hidden)
    actor_target = copy.deepcopy(actor)
    q1, q2 = relu_mlp(obs_dim + act_dim, 1, cfg.hidden), relu_mlp(obs_dim + act_dim, 1, cfg.hidden)
    q1_target, q2_target = copy.deepcopy(q1), copy.deepcopy(q2)
    q_opt = make_adam(list(q1.parameters()) + list(q2.parameters()), cfg.lr)
    actor_opt = make_adam(actor.parameters(), cfg.lr)

    n = cfg.total_steps
    buf_obs = np.zeros((n, obs_dim), np.float32)
    buf_next = np.zeros((n, obs_dim), np.float32)
    buf_act = np.zeros((n, act_dim), np.float32)
    buf_rew = np.zeros((n, 1), np.float32)

    log, episode_returns = [], []
    prov = provenance()
    started = time.time()

    def snapshot(step):
        file = f"step_{step:07d}.pt"
        ret = evaluate_actor(actor, cfg.domain, cfg.task)
        entry = {"step": step, "file": file, "eval_return": ret,
                 "train_return_recent": float(np.mean(episode_returns[-5:])) if episode_returns else None,
                 "wall_s": round(time.time() - started, 1)}
        save_actor(actor, out_dir / file, {"td3_config": asdict(cfg), **entry})
        log.append(entry)
        atomic_write_text(out_dir / "snapshots.json",
                          json.dumps({"config": asdict(cfg), "provenance": prov, "snapshots": log}, indent=1))
        return ret

    snapshot(0)
    ts = env.reset()
    obs = flat_observation(ts.observation)
    ep_ret = 0.0
    bar = tqdm(range(n), desc=f"TD3 {cfg.domain}-{cfg.task}", disable=not progress, mininterval=2)
    for step in bar:
        if step < cfg.learning_starts:
            act = rng.uniform(-1, 1, act_dim).astype(np.float32)
        else:
            with torch.no_grad():
                act = actor(torch.from_numpy(obs)[None])[0].numpy()
            act = np.clip(act + cfg.exploration_noise * rng.standard_normal(act_dim), -1, 1).astype(np.float32)
        ts = env.step(act)
        next_obs = flat_observation(ts.observation)
        buf_obs[step], buf_act[step], buf_rew[step], buf_next[step] = obs, act, ts.reward, next_obs
        ep_ret += ts.reward
        obs = next_obs
        if ts.last():   # DMC episodes end by time limit only: no terminal, bootstrap through
            episode_returns.append(ep_ret)
            bar.set_postfix(ret=f"{ep_ret:.0f}")
            ts, ep_ret = env.reset(), 0.0
            obs = flat_observation(ts.observation)

        if step >= cfg.learning_starts:
            idx = rng.integers(0, step + 1, cfg.batch_size)
            s, a = torch.from_numpy(buf_obs[idx]), torch.from_numpy(buf_act[idx])
            r, s2 = torch.from_numpy(buf_rew[idx]), torch.from_numpy(buf_next[idx])
            with torch.no_grad():
                noise = (torch.randn_like(a) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
                a2 = (actor_target(s2) + noise).clamp(-1, 1)
                sa2 = torch.cat([s2, a2], 1)
                y = r + cfg.gamma * torch.min(q1_target(sa2), q2_target(sa2))
            sa = torch.cat([s, a], 1)
            q_loss = ((q1(sa) - y) ** 2).mean() + ((q2(sa) - y) ** 2).mean()
            q_opt.zero_grad(set_to_none=True)
            q_loss.backward()
            q_opt.step()
            if step % cfg.policy_delay == 0:
                actor_loss = -q1(torch.cat([s, actor(s)], 1)).mean()
                actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                actor_opt.step()
                with torch.no_grad():
                    for net, target in ((actor, actor_target), (q1, q1_target), (q2, q2_target)):
                        for p, tp in zip(net.parameters(), target.parameters()):
                            tp.lerp_(p, cfg.tau)
        if (step + 1) % cfg.snapshot_every == 0:
            snapshot(step + 1)
    return log


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors
    from .envs import DOMAIN_TASKS, check_domain_task

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.td3", description="Train TD3 on a DMC task and save actor "
                                "snapshots (for data collection).")
    p.add_argument("--domain", default="walker", choices=sorted(DOMAIN_TASKS))
    p.add_argument("--task", default="run")
    p.add_argument("--steps", type=positive_int, default=TD3Config.total_steps)
    p.add_argument("--hidden", type=positive_int, default=TD3Config.hidden)
    p.add_argument("--snapshot-every", type=positive_int, default=TD3Config.snapshot_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with user_errors(p):
        check_domain_task(args.domain, args.task)
        torch.set_num_threads(args.threads)
        cfg = TD3Config(domain=args.domain, task=args.task, total_steps=args.steps, hidden=args.hidden,
                        snapshot_every=args.snapshot_every, seed=args.seed)
        for entry in train_td3(cfg, args.out):
            print(entry)


if __name__ == "__main__":
    main()
