"""Training-step throughput of the offline-RL agents (CFGRL + IQL, AWR + IQL), printed as a table.

Reference (measured by the issue's author, official JAX code, these 2 CPU cores, 3x512 networks):
    CFGRL + IQL: 7.5 steps/s at batch 256, 2.3 at batch 1024;  AWR + IQL: 9.7 and 2.8.
Usage:  python benchmarks/update_speed.py [--steps 30] [--batch 256 1024] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import torch

from cfgrl_core.agents.awr import AWRAgent
from cfgrl_core.agents.cfgrl import CFGRLAgent

JAX_REFERENCE = {("cfgrl", 256): 7.5, ("cfgrl", 1024): 2.3, ("awr", 256): 9.7, ("awr", 1024): 2.8}


def random_batch(n, obs_dim, act_dim, device):
    g = torch.Generator().manual_seed(0)
    b = {"observations": torch.randn(n, obs_dim, generator=g), "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
         "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs_dim, generator=g),
         "masks": torch.ones(n)}
    return {k: v.to(device) for k, v in b.items()}


def steps_per_second(agent, batch, steps, warmup=3):
    for _ in range(warmup):
        agent.update(batch)
    if batch["observations"].is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        agent.update(batch)
    if batch["observations"].is_cuda:
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, walker sizes (obs 24, act 6), 3x512 mish+LN")
    print(f"{'agent':8s} {'batch':>6s} {'steps/s':>9s} {'JAX ref':>8s} {'speed-up':>9s}")
    for name, cls in (("cfgrl", CFGRLAgent), ("awr", AWRAgent)):
        for bs in args.batch:
            agent = cls(24, 6, device=args.device)
            sps = steps_per_second(agent, random_batch(bs, 24, 6, agent.device), args.steps)
            ref = JAX_REFERENCE.get((name, bs))
            print(f"{name:8s} {bs:6d} {sps:9.2f} {ref or float('nan'):8.1f} {sps / ref if ref else float('nan'):8.2f}x")


if __name__ == "__main__":
    main()
