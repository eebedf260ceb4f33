"""Latency of one guidance-slider update (chapter 6), printed as a table.

Targets: guided sampling of K = 128 samples x 16 Euler steps <= 100 ms, and a whole update of the live slider <= 100 ms,
on 2 CPU cores.
Measures (1) guided sampling alone, at 16 and 32 Euler steps, and (2) a whole slider update while w is dragged: sampling,
the critic's Q of the samples, and rendering the figure to PNG (blitted over the state's cached background), and
(3) a switch of state (a full render). Uses the shipped walker-run networks when present.
Usage:  python benchmarks/slider_latency.py [--threads 2] [--repeats 30]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cfgrl_core.agents.iql import IQLAgent
from cfgrl_core.checkpoint import load_trained, trained_asset
from cfgrl_core.envs import ACTION_NAMES
from cfgrl_core.networks import FlowPolicyConfig
from cfgrl_core.policy import FlowPolicy
from cfgrl_core.slider import GuidanceView


def sampling_latency_ms(policy, obs, w: float, num_samples: int = 128, steps: int = 16, repeats: int = 20) -> dict:
    """Wall time of one guided sampling call (K samples x ``steps`` Euler steps, cond and uncond in one batch) for
    one state: median and 90th percentile over ``repeats`` calls after two warm-up calls, in milliseconds."""
    obs = policy.check_obs(obs)[:1]
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        policy.sample(obs, 1, w, num_samples=num_samples, steps=steps, seed=i)
        if i >= 2:
            times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.quantile(times, 0.9))}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = trained_asset("walker-run")
    if path.exists():
        t = load_trained(path, "cpu")
        policy, critic = t["policy"], t["critic"]
        source = f"{path.name} ({t['config']['cfgrl']['hidden_dims']})"
    else:
        torch.manual_seed(0)
        policy = FlowPolicy(FlowPolicyConfig(obs_dim=24, action_dim=6, hidden_dims=(256, 256, 256)), device="cpu")
        critic = IQLAgent(24, 6, {"hidden_dims": (256, 256, 256)}, "cpu")
        source = "untrained 3x256 networks"
    states = torch.randn(4, 24, generator=torch.Generator().manual_seed(0))
    print(f"networks: {source}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print("| measurement | median ms | p90 ms |\n|---|---|---|")
    for steps in (16, 32):
        r = sampling_latency_ms(policy, states[:1], 3.0, num_samples=128, steps=steps, repeats=args.repeats)
        print(f"| guided sampling, K=128 x {steps} Euler steps | {r['median_ms']:.1f} | {r['p90_ms']:.1f} |")
    view = GuidanceView(policy, critic, states, num_samples=128, steps=16, action_names=ACTION_NAMES["walker"])
    times = {"sample + Q + update artists": [], "render PNG": []}
    switch = []
    for state in range(4):
        t0 = time.perf_counter()
        view.draw(state, 1.0)
        view.png()      # a new state: the whole figure is drawn and its background kept
        switch.append(1000 * (time.perf_counter() - t0))
        for w in np.linspace(0.5, 10, args.repeats):   # dragging the w slider in that state
            t0 = time.perf_counter()
            view.draw(state, float(w))
            t1 = time.perf_counter()
            view.png()
            t2 = time.perf_counter()
            times["sample + Q + update artists"].append(1000 * (t1 - t0))
            times["render PNG"].append(1000 * (t2 - t1))
    total = np.add(*times.values())
    for name, v in [*times.items(), ("whole slider update (drag w)", total), ("switch to another state", switch[1:])]:
        print(f"| {name} | {np.median(v):.1f} | {np.quantile(v, 0.9):.1f} |")


if __name__ == "__main__":
    main()
