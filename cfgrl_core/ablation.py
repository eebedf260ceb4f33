"""Evaluation ablation: how much of the CFGRL-vs-AWR gap comes from how each policy is *evaluated*?

The official protocol evaluates AWR with its mean action (deterministic) and CFGRL by sampling. On data made of good
actions plus zero-mean noise (chapter 3's recipe), a mean action removes the noise and a faithful sampler keeps it.
This re-evaluates the trained networks of a finished run (no retraining) on the same test episodes with

  * CFGRL integrated from x_0 = 0 (one deterministic action per state), at every w;
  * AWR sampling from its Gaussian instead of taking the mean, at every T,

and writes ``ablation.json`` next to the run's ``results.json``.

    python -m cfgrl_core.ablation --runs runs/book --task walker-run --seeds 0 1 2 --threads 1
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .checkpoint import atomic_write_text, load_trained
from .evaluate import evaluate, flow_policy_actor, gaussian_actors_actor
from .provenance import provenance
from .envs import parse_task
from .run import episode_seeds


def ablate(run_dir, device=None) -> dict:
    run_dir = Path(run_dir)
    started_with = provenance()
    t = load_trained(run_dir / "checkpoint.pt", device)
    cfg, seed = t["config"], t["seed"]
    domain, task_name = parse_task(t["task"])
    seeds = episode_seeds("test", seed, cfg["test_episodes"])   # the runner's test episodes
    t0 = time.time()
    det = evaluate(flow_policy_actor(t["policy"], cfg["w_values"], seed=seed, noise_scale=0.0), domain, task_name,
                   len(cfg["w_values"]), seeds)
    sampled = evaluate(gaussian_actors_actor(t["awr"].values(), sample=True, seed=seed), domain, task_name,
                       len(t["awr"]), seeds)
    out = {"task": t["task"], "seed": seed, "config": cfg, "provenance": started_with,
           "cfgrl_deterministic_test": {f"{w:g}": det[i].tolist() for i, w in enumerate(cfg["w_values"])},
           "awr_sampled_test": {f"{T:g}": sampled[i].tolist() for i, T in enumerate(t["awr"])},
           "wall_s": round(time.time() - t0, 1)}
    atomic_write_text(run_dir / "ablation.json", json.dumps(out, indent=1))
    return out


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors
    from .envs import parse_task
    from .networks import default_device, default_threads

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.ablation",
                                description="Re-evaluate finished runs: deterministic CFGRL, sampled AWR.")
    p.add_argument("--runs", default="runs", help="the runner's --out folder")
    p.add_argument("--task", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=positive_int, default=None)
    args = p.parse_args(argv)
    with user_errors(p):
        parse_task(args.task)
        default_device(args.device)
        torch.set_num_threads(default_threads(args.threads))   # the runner's policy: $CFGRL_THREADS, else 1
        for seed in args.seeds:
            run_dir = Path(args.runs) / args.task / f"seed{seed}"
            if not (run_dir / "results.json").exists():
                raise FileNotFoundError(f"{run_dir} holds no finished run (no results.json); run cfgrl_core.run first")
            r = ablate(run_dir, args.device)
            print(json.dumps({"task": r["task"], "seed": seed, "wall_s": r["wall_s"]}))


if __name__ == "__main__":
    main()
