"""Training steps alone and beside a competing CPU process: the slowdown each thread count suffers.

The competitor is another torch process multiplying matrices with 2 threads (what a second training run, a test
suite or a notebook kernel looks like). For the `smoke` and `book` presets' step (critic step + actors step, built by
the runner's own functions) at 1 and 2 torch threads, it prints ms per step alone, ms per step beside the
competitor, and the slowdown. The library's default is 1 thread (``cfgrl_core.networks.default_threads``); the
target is at most 2.5x slower beside one competing process.

    python benchmarks/under_load.py [--presets smoke book] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMPETITOR = """
import torch
torch.set_num_threads(2)
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a)
"""

WORK = """
import sys, time, torch
preset, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
from cfgrl_core.run import actors_step, build_agents, resolve_config, trained_actors
cfg = resolve_config(preset)
torch.manual_seed(0)
critic, actors = build_agents(cfg, 24, 6, "cpu", torch.Generator().manual_seed(0))
actors = trained_actors(cfg, actors)
n = cfg["batch_size"]
b = {"observations": torch.randn(n, 24), "actions": torch.rand(n, 6) * 2 - 1, "rewards": torch.rand(n),
     "next_observations": torch.randn(n, 24), "masks": torch.ones(n)}
steps = 100 if preset == "smoke" else 20
for _ in range(3):
    critic.update(b); actors_step(critic, actors, b)
t = time.perf_counter()
for _ in range(steps):
    critic.update(b); actors_step(critic, actors, b)
print((time.perf_counter() - t) / steps * 1000)
"""


def ms_per_step(preset: str, threads: int, timeout: float = 600) -> float:
    out = subprocess.run([sys.executable, "-c", WORK, preset, str(threads)], capture_output=True, text=True,
                         timeout=timeout, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["smoke", "book"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    alone = {(pr, th): ms_per_step(pr, th) for pr in args.presets for th in args.threads}
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
    try:
        time.sleep(2)
        loaded = {(pr, th): ms_per_step(pr, th) for pr in args.presets for th in args.threads}
    finally:
        competitor.kill()
        competitor.wait()
    print("| preset | threads | alone, ms/step | beside a busy 2-thread process | slowdown | vs the best alone |")
    print("|---|---|---|---|---|---|")
    for pr in args.presets:
        best = min(alone[(pr, th)] for th in args.threads)
        for th in args.threads:
            a, b = alone[(pr, th)], loaded[(pr, th)]
            print(f"| {pr} | {th} | {a:.1f} | {b:.1f} | {b / a:.1f}x | {b / best:.1f}x |")


if __name__ == "__main__":
    main()
